import subprocess
import sys

import pandas as pd
import pytest

from unmask.data.manifest import read_manifest


def unmask(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "unmask", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("command", [[], ["prepare"], ["merge"], ["demo-clips"]])
def test_help_shows_an_example(command):
    result = unmask(*command, "--help")
    assert result.returncode == 0
    assert "Example: unmask" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["prepare", "/no/such/dir", "--dataset", "ffpp", "--out", "x"],
            "error: Dataset root /no/such/dir does not exist",
        ),
        (
            ["prepare", ".", "--dataset", "ffp", "--out", "x"],
            "error: Unknown dataset 'ffp'; choose one of celebdf, csv, dfdc, ffpp, folder. Did you mean 'ffpp'?",
        ),
        (["prepare", ".", "--dataset", "folder", "--out", "x", "--shard", "3"], "error: --shard must look like K/N"),
        (
            ["prepare", ".", "--dataset", "folder", "--out", "x", "--sampler", "keyframe"],
            "error: Unknown frame sampler 'keyframe'",
        ),
        (
            ["prepare", ".", "--dataset", "folder", "--out", "x", "--detector", "retina"],
            "error: Unknown face detector 'retina'",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_1(args, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "unmask", *args], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "x" / "manifest.parquet").exists()


def test_demo_clips_then_prepare_with_a_failure_exits_3(tmp_path):
    assert unmask("demo-clips", tmp_path / "clips", "--clips", "1", "--seconds", "1").returncode == 0
    (tmp_path / "clips" / "fake" / "broken.mp4").write_bytes(b"\0" * 100)
    result = unmask(
        "prepare",
        tmp_path / "clips",
        "--dataset",
        "folder",
        "--out",
        tmp_path / "out",
        "--num-frames",
        "4",
        "--max-side",
        "480",
        "--no-near-pass",
    )
    assert result.returncode == 3, result.stderr
    recorded = read_manifest(tmp_path / "out")[1]
    assert (recorded["max_side"], recorded["near_pass"], recorded["second_pass"]) == (480, False, True)
    assert "3 videos: 2 prepared, 0 already done, 1 failed; 8 face crops" in result.stdout
    assert "1 videos failed; reasons in" in result.stderr
    # what was written, the split sizes per protocol (videos / crops), an empty split named at once, what next
    assert "written: " in result.stdout and "(8 crops of 2 videos)" in result.stdout
    assert "  video     train 1 / 4, test 1 / 4" in result.stdout
    assert "official  none: this dataset has no official split" in result.stdout
    assert "warning: the video protocol has no val videos" in result.stderr
    assert result.stderr.count("has no val videos") == 1  # the library's warning gives way to the command's
    assert f"next: unmask train {tmp_path / 'out'} --protocol paper --out runs/NAME" in result.stdout
    df = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert sorted(df["video_id"].unique()) == ["fake/fake_astronaut_00", "real/real_astronaut_00"]


def test_shard_and_merge_from_the_command_line(demo_clips, tmp_path):
    for k in (1, 2):
        result = unmask(
            "prepare",
            demo_clips,
            "--dataset",
            "folder",
            "--out",
            tmp_path / f"s{k}",
            "--shard",
            f"{k}/2",
            "--num-frames",
            "2",
            "--size",
            "32",
        )
        assert result.returncode == 0, result.stderr
    result = unmask("merge", tmp_path / "s1", tmp_path / "s2", "--out", tmp_path / "all")
    assert result.returncode == 0, result.stderr
    assert f"written: {tmp_path / 'all' / 'manifest.parquet'} (8 crops of 4 videos), " in result.stdout
    assert (tmp_path / "all" / "failures.csv").is_file() and "next: unmask train" in result.stdout
    assert pd.read_parquet(tmp_path / "all" / "manifest.parquet")["video_id"].nunique() == 4


def test_train_evaluate_explain_and_table_from_the_command_line(prepared, tmp_path):
    run, evals = tmp_path / "run", tmp_path / "eval"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "unmask",
            "train",
            str(prepared),
            "--out",
            str(run),
            "--model",
            "mobilenetv3_small",
            "--no-pretrained",
            "--size",
            "64",
            "--epochs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "epoch 2:" in result.stdout and "checkpoint:" in result.stdout
    assert f"next: unmask evaluate {run} {prepared} --out {run / 'eval-test'}" in result.stdout
    assert f"tensorboard --logdir {run / 'tensorboard'}" in result.stdout
    assert "MODEL_CARD.md, model_card.json and reliability.png" in result.stdout
    assert all((run / name).is_file() for name in ("MODEL_CARD.md", "model_card.json", "reliability.png"))
    result = unmask("evaluate", run, prepared, "--out", evals, "--bootstrap", "0", "--no-report")
    assert result.returncode == 0, result.stderr
    assert "frame  raw_argmax" in result.stdout and (evals / "metrics.json").is_file()
    assert f"next: unmask table {evals}" in result.stdout
    result = unmask("table", evals, "--csv", tmp_path / "table.csv")
    assert result.returncode == 0 and "| mobilenetv3_small |" in result.stdout
    assert pd.read_csv(tmp_path / "table.csv").loc[0, "protocol"] == "video"
    crop = prepared / pd.read_parquet(prepared / "manifest.parquet")["crop_path"].iloc[0]
    result = unmask("explain", run, crop, "--out", tmp_path / "why", "--methods", "gradcam", "--is-crop")
    assert result.returncode == 0, result.stderr
    assert "gradcam" in result.stdout and len(list((tmp_path / "why").glob("*_gradcam.png"))) == 1
    assert "next: unmask predict" not in result.stdout  # predict finds faces itself: a crop is no input for it


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", ".", "--out", "r", "--model", "xceptionn"], "error: Unknown model 'xceptionn'"),
        (["evaluate", "nowhere", ".", "--out", "e"], "error: No checkpoint at nowhere; train one"),
        (["table", "nowhere"], "error: No metrics.json in nowhere"),
    ],
)
def test_later_stage_user_errors_are_one_line(args, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "unmask", *args], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_interrupted_train_says_the_exact_command_that_goes_on(prepared, tmp_path):
    import shlex
    import signal
    import time

    args = [
        "train",
        str(prepared),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "mobilenetv3_small",
        "--no-pretrained",
        "--size",
        "64",
        "--epochs",
        "50",
        "--early-stopping",
        "0",
        "--workers",
        "0",
        "--max-steps",
        "1",
    ]
    # SIG_DFL in the child: a test run started in the background inherits SIGINT ignored
    proc = subprocess.Popen(
        [sys.executable, "-m", "unmask", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "run" / "last.safetensors").is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    hint = stderr.strip().splitlines()[-1]
    assert hint.startswith(f"interrupted: the epochs finished are kept in {tmp_path / 'run'}; go on with: "), hint
    assert shlex.split(hint.split("go on with: ", 1)[1]) == ["unmask", *args, "--resume"]

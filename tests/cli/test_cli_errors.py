"""Every mistake on the command line costs one line and a non-zero exit, never a traceback.

Run through the installed ``unmask`` entry point (as a user runs it), with this checkout's code.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ENTRY = shutil.which("unmask", path=str(Path(sys.executable).parent))


def run_unmask(*args, cwd):
    if ENTRY is None:
        pytest.fail(f"no `unmask` entry point beside {sys.executable}; install the package (pip install -e .)")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([ENTRY, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def assert_one_line(result, code, start):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(start), result.stderr


@pytest.mark.parametrize(
    "args, start",
    [
        (["prepare"], "error: Missing argument 'root'. (see: unmask prepare --help)"),
        (["prepare", "a", "b", "--dataset", "folder", "--out", "x"], "error: Got unexpected extra argument(s) (b)"),
        (
            ["prepare", "a", "--dataset", "folder", "--out", "x", "--num-frames", "abc"],
            "error: Invalid value for '--num-frames'",
        ),
        (["prepar"], "error: No such command 'prepar'."),
        (["prepare", "a", "--dataset", "folder", "--out", "x", "--bogus"], "error: No such option: --bogus"),
        (["train", ".", "--out", "r", "--lr", "fast"], "error: Invalid value for '--lr'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args, start, tmp_path):
    assert_one_line(run_unmask(*args, cwd=tmp_path), 2, start)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from unmask.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("cli-clips"), clips_per_class=1, seconds=0.5, fps=4)


@pytest.mark.parametrize(
    "flags, start",
    [
        (["--margin", "nan"], "error: --margin must be at least 1.0"),
        (["--margin", "inf"], "error: --margin must be at least 1.0"),
        (["--size", "100000"], "error: --size must lie between 8 and 1024 pixels, not 100000"),
    ],
)
def test_bad_prepare_values_are_refused_before_any_work(flags, start, clips, tmp_path):
    assert_one_line(
        run_unmask("prepare", clips, "--dataset", "folder", "--out", tmp_path / "out", *flags, cwd=tmp_path), 1, start
    )
    assert not (tmp_path / "out").exists()


def test_out_folders_that_cannot_be_written_are_refused(clips, tmp_path):
    (tmp_path / "file").write_text("x")
    assert_one_line(
        run_unmask("prepare", clips, "--dataset", "folder", "--out", tmp_path / "file" / "out", cwd=tmp_path),
        1,
        "error: The output folder ",
    )
    readonly = Path("/sys") if os.geteuid() == 0 else tmp_path / "ro"
    readonly.mkdir(mode=0o555, exist_ok=True)
    result = run_unmask("prepare", clips, "--dataset", "folder", "--out", readonly, cwd=tmp_path)
    assert_one_line(result, 1, "error: The output folder ")
    assert "cannot be written" in result.stderr


def test_bad_csv_files_are_one_line_and_a_bom_is_accepted(clips, tmp_path):
    binary = tmp_path / "list.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    assert_one_line(
        run_unmask("prepare", binary, "--dataset", "csv", "--out", tmp_path / "o1", cwd=tmp_path), 1, "error: "
    )
    listed = tmp_path / "bom.csv"
    listed.write_bytes(f"path,label\n{next(clips.glob('real/*.mp4'))},real\n".encode("utf-8-sig"))
    result = run_unmask(
        "prepare",
        listed,
        "--dataset",
        "csv",
        "--out",
        tmp_path / "o2",
        "--num-frames",
        "2",
        "--size",
        "32",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_bad_training_values_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "weights.pth").write_bytes(
        b"not a weights file\n" * 200
    )  # random bytes look like one about 1 time in 128
    for args, start in [
        (["--lr", "nan"], "error: --lr must be a positive number, not nan"),
        (["--weights", tmp_path / "weights.pth"], "error: The weights file "),
        (["--out", tmp_path / "file"], "error: The output folder "),
        # the library names settings as Python does; the command line shows its flags
        (
            ["--batch-sampler", "balanced", "--class-weights", "effective"],
            "error: --batch-sampler balanced already draws the classes equally; with --class-weights "
            "effective the imbalance would be corrected twice",
        ),
    ]:
        out = [] if "--out" in args else ["--out", tmp_path / "run"]
        result = run_unmask("train", tmp_path, "--model", "mobilenetv3_small", *out, *args, cwd=tmp_path)
        assert_one_line(result, 1, start)


def test_a_manifest_with_other_labels_and_a_checkpoint_with_nan_are_refused(prepared, tmp_path):
    from dataclasses import asdict

    from unmask.models import create_model, get_spec
    from unmask.decision.checkpoint import save_checkpoint

    model = create_model("mobilenetv3_small")
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    meta = {
        "spec": asdict(get_spec("mobilenetv3_small")),
        "temperature": 1.0,
        "bias": 0.0,
        "threshold": 0.5,
        "data": {"protocol": "video"},
        "size_px": 64,
    }
    save_checkpoint(tmp_path / "run" / "model.safetensors", state, meta)
    result = run_unmask("evaluate", tmp_path / "run", prepared, "--out", tmp_path / "eval", cwd=tmp_path)
    assert_one_line(result, 1, "error: ")
    assert "not numbers (NaN or inf" in result.stderr

    from unmask.data.manifest import read_manifest, write_manifest
    from unmask.errors import ManifestError

    df, meta = read_manifest(prepared)
    df.loc[df.index[:3], "label"] = 2
    write_manifest(df, tmp_path / "bad" / "manifest.parquet", meta)
    with pytest.raises(ManifestError, match=r"has labels other than 0 \(real\) and 1 \(fake\): \[2\]"):
        read_manifest(tmp_path / "bad")

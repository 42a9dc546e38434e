"""``unmask reproduce`` end to end on a tiny Celeb-DF-v2 layout made from the demo clips."""

import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from unmask.demo import make_demo_dataset
from unmask.errors import UnmaskError
from unmask.recipes.reproduce import RESULT_COLUMNS, VOLATILE, reproduce, resolve_weights, results_html
from unmask.training.config import make_config

MODEL = "efficientnetv2_s"  # a paper backbone; from scratch at 64 px, one step an epoch, it costs seconds
# Cheap and offline: no ImageNet weights, small inputs, one step an epoch, few frames, few resamples,
# reports without their heatmap gallery.
CHEAP = dict(
    dataset="celebdf",
    models=[MODEL],
    pretrained=False,
    size=64,
    epochs=2,
    batch_size=8,
    max_steps=1,
    num_frames=4,
    bootstrap=50,
    report_examples=0,
)


def make_celebdf(out: Path, groups: int = 8) -> Path:
    """``groups`` pairs of people, each with a real clip of the first and a swap of the second onto it."""
    # distinct files: a video's identity is its content (copies of one clip would be one video seen twice)
    clips = make_demo_dataset(out / "clips", clips_per_class=groups, seconds=0.5, fps=8)
    real, fake = sorted((clips / "real").iterdir()), sorted((clips / "fake").iterdir())
    root = out / "celebdf"
    (root / "Celeb-real").mkdir(parents=True)
    (root / "Celeb-synthesis").mkdir()
    for k in range(groups):
        shutil.copy(real[k], root / "Celeb-real" / f"id{2 * k}_0000.mp4")
        shutil.copy(fake[k], root / "Celeb-synthesis" / f"id{2 * k}_id{2 * k + 1}_0000.mp4")
    (root / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n")
    return root


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """Three calls into one folder: killed after the paper run's first epoch, then run to the end, then again."""
    tmp = tmp_path_factory.mktemp("reproduce")
    root, out = make_celebdf(tmp), tmp / "out"
    epochs_seen: list[list] = [[], [], []]
    lines: list[list] = [[], [], []]

    def call(i, stop_at=None):
        def on_epoch(name, row):
            epochs_seen[i].append((name, row["epoch"], row["seconds"]))
            if (name, row["epoch"]) == stop_at:
                raise Interrupt  # as Ctrl-C would, after the epoch's checkpoint is written

        return reproduce(root, out, **CHEAP, progress=lines[i].append, on_epoch=on_epoch)

    with pytest.raises(Interrupt):
        call(0, stop_at=(f"{MODEL}-paper", 1))
    second = call(1)
    before = mtimes(out)
    third = call(2)
    return dict(root=root, out=out, second=second, third=third, epochs=epochs_seen, lines=lines, before=before)


def test_an_interrupted_run_resumes_and_a_finished_one_is_not_redone(reproduced):
    out, second, third = reproduced["out"], reproduced["second"], reproduced["third"]
    first_epochs, second_epochs, third_epochs = reproduced["epochs"]
    paper, default = f"{MODEL}-paper", f"{MODEL}-default"
    assert [(n, e) for n, e, _ in first_epochs] == [(paper, 1)]
    # The second call prepares nothing and trains the paper run on from its checkpoint: epoch 2 only.
    assert second.skipped == ["prepare"]
    assert second.ran == [f"train {paper}", f"evaluate {paper}", f"train {default}", f"evaluate {default}"]
    assert [(n, e) for n, e, _ in second_epochs] == [(paper, 2), (default, 1), (default, 2)]
    assert f"train {paper}: resuming from its last epoch" in reproduced["lines"][1]
    history = pd.read_csv(out / "runs" / paper / "metrics.csv")
    assert list(history["epoch"]) == [1, 2] and history["seconds"][0] == pytest.approx(first_epochs[0][2])
    # The third finds everything finished: no step runs, not one file changes.
    assert third.ran == [] and len(third.skipped) == 5 and third_epochs == []
    assert mtimes(out) == reproduced["before"]


def test_the_table_holds_the_paper_row_beside_the_honest_one(reproduced):
    out, table = reproduced["out"], reproduced["third"].table
    assert list(zip(table["model"], table["preset"], table["protocol"])) == [
        (MODEL, "paper", "paper"),
        (MODEL, "default", "video"),
    ]
    assert table.loc[0, "paper says acc"] == 0.97 and pd.isna(
        table.loc[1, "paper says acc"]
    )  # the paper's EfficientNetV2-S (PAPER_ACCURACY)
    for row, preset in enumerate(("paper", "default")):
        metrics = json.loads((out / "eval" / f"{MODEL}-{preset}" / "metrics.json").read_text())
        assert table.loc[row, "argmax acc"] == pytest.approx(metrics["frame"]["raw_argmax"]["accuracy"])
        assert table.loc[row, "test videos"] == metrics["video"]["n"]
    # The paper's frame split tests on frames of training videos; the default split on unseen ones.
    assert table.loc[0, "seen in training"] > 0.5 and table.loc[1, "seen in training"] == 0
    markdown = (out / "results.md").read_text()
    assert f"| {MODEL} | paper | paper |" in markdown and f"| {MODEL} | default | video |" in markdown
    assert (
        "--epochs 2, --size 64, --batch-size 8, --max-steps 1, --no-pretrained" in markdown
    )  # the paper rows say how they differ from the paper
    page = (out / "results.html").read_text()
    for preset in ("paper", "default"):
        assert f'href="eval/{MODEL}-{preset}/report.html"' in page
        assert (out / "eval" / f"{MODEL}-{preset}" / "report.html").is_file()


def test_runs_follow_make_config_so_the_default_row_is_the_default_preset(reproduced):
    for preset in ("paper", "default"):
        recorded = json.loads((reproduced["out"] / "runs" / f"{MODEL}-{preset}" / "config.json").read_text())["config"]
        expected = json.loads(
            json.dumps(
                asdict(make_config(preset, model=MODEL, pretrained=False, size=64, epochs=2, batch_size=8, max_steps=1))
            )
        )
        assert {k: v for k, v in recorded.items() if k not in VOLATILE} == {
            k: v for k, v in expected.items() if k not in VOLATILE
        }


def test_a_rerun_with_other_settings_stops_with_one_line(reproduced):
    root, out = reproduced["root"], reproduced["out"]
    before = mtimes(out)
    with pytest.raises(UnmaskError, match=r"was prepared with other settings \(sampler .*num_frames"):
        reproduce(root, out, **{**CHEAP, "num_frames": 3})
    with pytest.raises(
        UnmaskError, match=rf"runs/{MODEL}-paper was trained with other settings \(epochs 2 there, 1 now\)"
    ):
        reproduce(root, out, **{**CHEAP, "epochs": 1})
    assert mtimes(out) == before


def test_the_command_line_runs_a_reproduction_and_prints_its_table(reproduced, tmp_path):
    """From the command line, into a new folder (its progress bars fed by every step), then again."""
    command = [
        sys.executable,
        "-m",
        "unmask",
        "reproduce",
        str(reproduced["root"]),
        "--dataset",
        "celebdf",
        "--out",
        str(tmp_path / "out"),
        "--models",
        MODEL,
        "--presets",
        "default",
        "--no-pretrained",
        "--size",
        "64",
        "--epochs",
        "1",
        "--num-frames",
        "4",
        "--bootstrap",
        "50",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
        "--report-examples",
        "0",
    ]
    for done_before in (False, True):
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert ("prepare: done already" in result.stdout) == done_before, result.stdout
        assert f"| {MODEL} | default | video |" in result.stdout


def test_results_page_escapes_what_it_shows_and_links_only_written_reports(tmp_path):
    table = pd.DataFrame([dict.fromkeys(RESULT_COLUMNS), dict.fromkeys(RESULT_COLUMNS)])
    table.loc[0, ["model", "preset", "auc"]] = ["<script>alert(1)</script>", "paper", 0.912345]
    table.loc[1, ["model", "preset"]] = ["b", "default"]
    (tmp_path / "eval" / "a").mkdir(parents=True)
    (tmp_path / "eval" / "a" / "report.html").write_text("")
    evals = [("a", "paper", tmp_path / "eval" / "a"), ("b", "default", tmp_path / "eval" / "b")]
    page = results_html(table, "celebdf", evals, tmp_path, notes=["--size 64", "a <b> note"])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &lt;b&gt; note" in page and "<td>0.9123</td>" in page
    assert page.count("<a href=") == 1 and 'href="eval/a/report.html"' in page
    assert "<h1>The paper's table beside the honest one: Celeb-DF-v2</h1>" in page.replace("&#39;", "'")


def test_weights_are_found_by_model_name_or_given_one_by_one(tmp_path):
    (tmp_path / "xception.pth").write_bytes(b"x")
    (tmp_path / "tf_efficientnetv2_s.safetensors").write_bytes(b"x")
    found = resolve_weights(
        ["xception", "efficientnetv2_s", "efficientnetv2_m"], {"efficientnetv2_m": "m.bin"}, tmp_path
    )
    assert found == {
        "xception": str(tmp_path / "xception.pth"),
        "efficientnetv2_s": str(tmp_path / "tf_efficientnetv2_s.safetensors"),
        "efficientnetv2_m": "m.bin",
    }
    with pytest.raises(
        UnmaskError, match="has no weights for inception_resnet_v2: expected inception_resnet_v2.safetensors"
    ):
        resolve_weights(["inception_resnet_v2"], None, tmp_path)
    with pytest.raises(UnmaskError, match="--weights given for xception, which --models does not train"):
        resolve_weights(["efficientnetv2_s"], {"xception": "x.pth"})
    assert resolve_weights(["xception"]) == {"xception": None}


def test_missing_imagenet_weights_stop_it_before_the_prepare(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    (tmp_path / "celebdf" / "Celeb-real").mkdir(parents=True)
    with pytest.raises(UnmaskError, match="pass weights with xception=FILE, or a weights_dir, or train from scratch"):
        reproduce(tmp_path / "celebdf", tmp_path / "out", dataset="celebdf", models=["xception"])
    assert not (tmp_path / "out" / "data").exists()
    with pytest.raises(UnmaskError, match="Unknown dataset for reproduce 'dfdc'; choose one of celebdf, ffpp"):
        reproduce(tmp_path / "celebdf", tmp_path / "out2", dataset="dfdc")

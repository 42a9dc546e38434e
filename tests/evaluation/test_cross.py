import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from unmask.data.manifest import read_manifest
from unmask.evaluation.cross import CROSS_COLUMNS, cross_table, data_labels, format_interval
from unmask.evaluation.evaluator import evaluate
from unmask.evaluation.table import to_markdown


@pytest.fixture(scope="module")
def within_and_cross(small_run, prepared, tmp_path_factory):
    """The small run judged on its own test split, and on every crop of a copy of its data folder
    (another folder: to the table, another dataset) with no recorded intervals."""
    tmp = tmp_path_factory.mktemp("cross")
    other = tmp / "other-data"
    shutil.copytree(prepared, other, ignore=shutil.ignore_patterns("cache"))
    run = small_run[0].run_dir
    within = evaluate(run, prepared, tmp / "within", bootstrap=200, report=False)
    cross = evaluate(run, other, tmp / "cross", split="all", bootstrap=0, report=False)
    return within, cross, other


def test_rows_are_labelled_train_to_test_with_the_within_row_first(within_and_cross, prepared):
    within, cross, other = within_and_cross
    table = cross_table([cross.out_dir, within.out_dir])
    assert list(table.columns) == CROSS_COLUMNS
    # "folder" says nothing about where the videos came from: rows are named by the data folders.
    assert list(table["train -> test"]) == [f"{prepared.name} -> {prepared.name}", f"{prepared.name} -> other-data"]
    assert list(table["kind"]) == ["within", "cross"] and list(table["split"]) == ["test", "all"]
    # The copy holds the very videos the run trained and validated on: matched by identity, not by folder.
    manifest, _ = read_manifest(prepared)
    trained = manifest.loc[manifest["split_video"].isin(["train", "val"]), "video_id"].nunique()
    assert list(table["seen in training"]) == [0.0, pytest.approx(trained / manifest["video_id"].nunique())]
    # The copy holds all 12 videos (6 fake, 6 real); the within row its test videos.
    assert table.loc[1, "videos"] == 12 and table.loc[1, "fake / real"] == "6 / 6"
    assert table.loc[0, "videos"] == within.metrics["video"]["n"]
    for row, result in enumerate((within, cross)):
        assert table.loc[row, "video auc"] == pytest.approx(result.metrics["video"]["scores"]["auc"])
        assert table.loc[row, "frame auc"] == pytest.approx(result.metrics["frame"]["scores"]["auc"])
    assert table.loc[0, "video auc 95% ci"] == format_interval(within.metrics["video"]["ci95"]["auc"])
    markdown = to_markdown(table)
    assert markdown.splitlines()[0].startswith("| train -> test | model | kind |")


@pytest.mark.parametrize("scores, expected", [("label", "[1.00, 1.00]"), ("inverted", "[0.00, 0.00]")])
def test_intervals_missing_from_an_evaluation_are_bootstrapped_from_its_scores(
    within_and_cross, tmp_path, scores, expected
):
    _, cross, _ = within_and_cross
    folder = tmp_path / "eval"
    shutil.copytree(cross.out_dir, folder)
    for level in ("video", "frame"):
        df = pd.read_csv(folder / f"{level}_scores.csv")
        # Scores that rank every fake above every real (or below): AUC 1 (or 0) in every resample.
        df["p_fake"] = df["label"] if scores == "label" else 1 - df["label"]
        df.to_csv(folder / f"{level}_scores.csv", index=False)
    row = cross_table([folder], bootstrap=100).iloc[0]
    assert row["video auc 95% ci"] == expected and row["frame auc 95% ci"] == expected
    assert row["video acc 95% ci"] == ("[1.00, 1.00]" if scores == "label" else "[0.00, 0.00]")
    assert cross_table([folder], bootstrap=0).loc[0, "video auc 95% ci"] == "-"


def test_data_folders_are_named_by_dataset_where_that_tells_them_apart():
    assert data_labels({"/r/ffpp-c23": "ffpp", "/r/celebdf": "celebdf"}) == {
        "/r/ffpp-c23": "ffpp",
        "/r/celebdf": "celebdf",
    }
    # Two FF++ folders (c23, c40): their folder names tell them apart.
    assert data_labels({"/r/ffpp-c23": "ffpp", "/r/ffpp-c40": "ffpp", "/r/cdf": "celebdf"}) == {
        "/r/ffpp-c23": "ffpp-c23",
        "/r/ffpp-c40": "ffpp-c40",
        "/r/cdf": "celebdf",
    }
    # CSV datasets sharing a folder name: the parent tells them apart.
    assert data_labels({"/a/ffpp/data": "csv", "/a/dfdc/data": "csv"}) == {
        "/a/ffpp/data": "ffpp/data",
        "/a/dfdc/data": "dfdc/data",
    }


def test_format_interval():
    assert format_interval([0.8123, 0.9988]) == "[0.81, 1.00]"
    assert format_interval(None) == format_interval([None, None]) == format_interval([float("nan")] * 2) == "-"


def test_table_cross_from_the_command_line(within_and_cross, tmp_path):
    within, cross, _ = within_and_cross
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "unmask",
            "table",
            str(within.out_dir),
            str(cross.out_dir),
            "--cross",
            "--csv",
            str(tmp_path / "cross.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("| train -> test |") and "| within |" in result.stdout
    assert list(pd.read_csv(tmp_path / "cross.csv")["kind"]) == ["within", "cross"]
    metrics = json.loads((within.out_dir / "metrics.json").read_text())
    assert metrics["trained_data"] == metrics["data"]  # evaluate records the folder the run trained on

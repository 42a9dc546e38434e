"""Per-method and per-dataset results: each method's fakes against all real videos of its dataset."""

import json

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from unmask.evaluation.evaluator import evaluate, format_metrics
from unmask.evaluation.metrics import PAIRING, per_method_metrics, reliability
from unmask.evaluation.table import make_method_table, to_markdown


def _scored(videos: list[tuple[str, str, int, float]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Videos ``(dataset, method, label, p_fake)`` and their frames (two per video, same score)."""
    v = pd.DataFrame(
        [
            {"dataset": d, "video_id": f"{d}/{m}/{i}", "method": m, "label": y, "p_fake": p}
            for i, (d, m, y, p) in enumerate(videos)
        ]
    )
    return pd.concat([v, v], ignore_index=True), v


def _row(result, dataset, method):
    (row,) = [r for r in result["rows"] if r["dataset"] == dataset and r["method"] == method]
    return row


def test_each_method_is_paired_with_all_real_videos_of_its_own_dataset():
    frames, videos = _scored(
        [
            ("ffpp", "Deepfakes", 1, 0.9),
            ("ffpp", "Deepfakes", 1, 0.8),
            ("ffpp", "Face2Face", 1, 0.3),
            ("ffpp", "Face2Face", 1, 0.6),
            ("ffpp", "original", 0, 0.1),
            ("ffpp", "original", 0, 0.2),
            ("ffpp", "original", 0, 0.85),
            ("celebdf", "Celeb-synthesis", 1, 0.7),
            ("celebdf", "Celeb-synthesis", 1, 0.4),
            ("celebdf", "Celeb-real", 0, 0.3),
            ("celebdf", "YouTube-real", 0, 0.5),
        ]
    )
    result = per_method_metrics(frames, videos, threshold=0.5)
    assert result["pairing"] == PAIRING and result["threshold"] == 0.5
    # Deepfakes against the three FF++ reals only (Celeb-DF's reals would change every figure)
    deepfakes = _row(result, "ffpp", "Deepfakes")
    assert (deepfakes["videos_fake"], deepfakes["videos_real"], deepfakes["label"]) == (2, 3, "fake")
    assert deepfakes["video"] == {"n": 5, "auc": pytest.approx(5 / 6), "accuracy": pytest.approx(4 / 5), "recall": 1.0}
    assert _row(result, "ffpp", "Face2Face")["video"] == {
        "n": 5,
        "auc": pytest.approx(4 / 6),
        "accuracy": pytest.approx(3 / 5),
        "recall": 0.5,
    }
    # the pooled row of a dataset with several methods: every fake against the same reals
    assert _row(result, "ffpp", "all")["video"] == {
        "n": 7,
        "auc": pytest.approx(9 / 12),
        "accuracy": pytest.approx(5 / 7),
        "recall": 0.75,
    }
    original = _row(result, "ffpp", "original")
    assert original["label"] == "real" and original["video"] == {
        "n": 3,
        "auc": None,
        "accuracy": pytest.approx(2 / 3),
        "recall": None,
    }
    celeb = _row(result, "celebdf", "Celeb-synthesis")
    assert (celeb["videos_fake"], celeb["videos_real"]) == (2, 2)
    assert celeb["video"] == {"n": 4, "auc": pytest.approx(3 / 4), "accuracy": 0.5, "recall": 0.5}  # 0.5 is called fake
    assert _row(result, "celebdf", "YouTube-real")["video"]["accuracy"] == 0.0
    assert not [r for r in result["rows"] if r["dataset"] == "celebdf" and r["method"] == "all"]  # one method: no pool
    assert deepfakes["frame"] == {**deepfakes["video"], "n": 10}  # two equal frames per video: the same figures


def test_reliability_and_ece_on_a_case_worked_by_hand():
    # bin [0.2, 0.3): mean p 0.25, 1 of 4 fake (gap 0); bin [0.9, 1.0]: mean p 0.95, 1 of 2 fake (gap 0.45)
    curve = reliability([0, 0, 1, 0, 1, 0], [0.2, 0.25, 0.25, 0.3 - 1e-9, 0.9, 1.0])
    assert [(b["n"], b["share_fake"]) for b in curve["bins"]] == [(4, 0.25), (2, 0.5)]
    assert curve["ece"] == pytest.approx(2 / 6 * 0.45, abs=1e-8) and curve["n"] == 6


@pytest.fixture(scope="module")
def ffpp_evaluated(small_run, ffpp_samples, tmp_path_factory):
    """The small demo run on the four real FF++ clips (every crop: a cross-dataset test)."""
    from unmask.data.preparation import PrepareConfig, prepare
    from unmask.video import FrameSampler

    out = tmp_path_factory.mktemp("ffpp-per-method")
    prepare(ffpp_samples, out / "data", PrepareConfig("ffpp", sampler=FrameSampler("uniform", 4), size=64))
    return evaluate(small_run[0].run_dir, out / "data", out / "eval", split="all", bootstrap=0, report=False)


def test_per_method_figures_on_the_real_ffpp_samples(ffpp_evaluated, capsys):
    metrics = json.loads((ffpp_evaluated.out_dir / "metrics.json").read_text())
    videos = pd.read_csv(ffpp_evaluated.out_dir / "video_scores.csv")
    rows = {(r["dataset"], r["method"]): r for r in metrics["per_method"]["rows"]}
    assert list(rows) == [("ffpp", "Deepfakes"), ("ffpp", "NeuralTextures"), ("ffpp", "all"), ("ffpp", "original")]
    threshold = metrics["threshold"]
    reals = videos[videos["label"] == 0]
    for method in ("Deepfakes", "NeuralTextures"):
        both = pd.concat([videos[videos["method"] == method], reals])  # 1 fake, both FF++ originals
        row = rows[("ffpp", method)]
        assert (row["videos_fake"], row["videos_real"]) == (1, 2)
        assert row["video"]["auc"] == pytest.approx(roc_auc_score(both["label"], both["p_fake"]))
        assert row["video"]["accuracy"] == pytest.approx(((both["p_fake"] >= threshold) == both["label"]).mean())
        assert row["video"]["recall"] == float(videos.loc[videos["method"] == method, "p_fake"].iloc[0] >= threshold)
    text = format_metrics(metrics)
    assert "NeuralTextures" in text and "all real videos of the same source dataset" in text
    table = make_method_table([ffpp_evaluated.out_dir])
    assert list(table["method"]) == ["Deepfakes", "NeuralTextures", "all", "original"]
    assert table.loc[0, "video auc"] == pytest.approx(rows[("ffpp", "Deepfakes")]["video"]["auc"])
    assert "| Deepfakes | fake | 1 | 2 |" in to_markdown(table)


def test_unmask_table_prints_and_writes_the_per_method_table(ffpp_evaluated, tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "unmask", "table", str(ffpp_evaluated.out_dir), "--csv", str(tmp_path / "r.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Per method. Each method's fake videos are paired with all real videos of their dataset" in result.stdout
    assert "| NeuralTextures |" in result.stdout
    methods = pd.read_csv(tmp_path / "r.per-method.csv")
    assert list(methods["method"]) == ["Deepfakes", "NeuralTextures", "all", "original"]


def test_worst_judged_means_wrongly_judged():
    from unmask.evaluation.report import wrongly_judged

    videos = pd.DataFrame(
        {"video_id": list("abcdef"), "label": [0, 0, 1, 1, 0, 1], "p_fake": [0.45, 0.7, 0.55, 0.1, 0.05, 0.95]}
    )
    # a real video at 0.45 is judged rightly at 0.5, however close: only b (real, 0.7) and d (fake, 0.1) are wrong
    assert list(wrongly_judged(videos, 0.5)["video_id"]) == ["d", "b"]
    assert list(wrongly_judged(videos, 0.4)["video_id"]) == ["d", "b", "a"]  # a threshold below 0.45 makes a wrong
    assert wrongly_judged(videos[videos["video_id"].isin(["e", "f"])], 0.5).empty

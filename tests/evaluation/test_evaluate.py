import json

import pandas as pd
import pytest

from unmask.errors import ManifestError, UnknownNameError, UnmaskError
from unmask.evaluation.evaluator import evaluate
from unmask.evaluation.table import make_table, to_markdown

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def evaluated(small_run, prepared, tmp_path_factory):
    result, _ = small_run
    return evaluate(
        result.run_dir, prepared, tmp_path_factory.mktemp("eval") / "video", bootstrap=200, explain_per_case=1
    )


def test_metrics_json_has_every_field(evaluated, prepared):
    metrics = json.loads((evaluated.out_dir / "metrics.json").read_text())
    test_crops = (pd.read_parquet(prepared / "manifest.parquet")["split_video"] == "test").sum()
    assert metrics["frame"]["n"] == test_crops and metrics["video"]["n"] == evaluated.video_scores.shape[0]
    for level in ("frame", "video"):
        m = metrics[level]
        for decision in ("raw_argmax", "calibrated_cost"):
            assert {"threshold", "accuracy", "real", "fake", "macro", "weighted", "confusion_matrix"} <= set(
                m[decision]
            )
            assert set(m[decision]["weighted"]) == {"precision", "recall", "f1", "support"}
        assert set(m["scores"]) == set(m["scores_raw"]) == {"auc", "ap", "eer", "log_loss", "brier"}
        assert set(m["ci95"]) == {"auc", "accuracy"}
    assert metrics["protocol"] == "video" and metrics["aggregation"] == "mean" and metrics["threshold"] == 0.5
    health = metrics["calibration"]["frame"]["health"]
    assert {"n", "n_fake", "n_real", "separable", "at_bound", "trusted", "note", "videos_fake"} <= set(health)
    assert "fewer than" in metrics["calibration"]["video"]["health"]["note"]  # 1-2 validation videos a class
    frames = pd.read_csv(evaluated.out_dir / "frame_scores.csv")
    assert len(frames) == test_crops and frames["p_fake"].between(0, 1).all()
    from sklearn.metrics import roc_auc_score

    assert metrics["frame"]["scores"]["auc"] == pytest.approx(roc_auc_score(frames["label"], frames["p_fake"]))
    videos = pd.read_csv(evaluated.out_dir / "video_scores.csv")
    means = frames.groupby("video_id")["p_fake"].mean()
    assert videos.set_index("video_id")["p_fake"].to_dict() == pytest.approx(means.to_dict())


def test_report_renders_in_headless_chromium(evaluated, tmp_path):
    from playwright import sync_api as playwright  # installed by scripts/setup.sh, with Debian's chromium

    report = evaluated.out_dir / "report.html"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(report.resolve().as_uri())
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        card = page.locator("#model-card")
        card_headings = card.locator("h3").all_text_contents()
        card_rows = dict(zip(card.locator("th").all_text_contents(), card.locator("td").all_text_contents()))
        warnings_visible = card.locator(".warnings").is_visible()
        page.click("a[href='#model-card']")
        card_in_view = page.evaluate("document.getElementById('model-card').getBoundingClientRect().top < 900")
        video_rows = page.locator("#video-scores tr").count()
        method_rows = page.locator("#per-method tr").all_text_contents()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert len(images) >= 8 and all(complete and width > 0 for _, complete, width in images), images
    assert {
        "Metrics",
        "Per method",
        "Confusion matrices",
        "ROC and precision-recall",
        "Training",
        "Wrongly judged videos",
        "Video scores",
        "Explanations",
        "Model card",
    } <= set(headings)
    alts = [alt for alt, _, _ in images]
    assert "reliability diagram" in alts and any(alt.endswith("heatmaps") for alt in alts)
    # the model card: data, training, validation, costs, calibration health, seen share, versions
    assert card_headings == [
        "Model",
        "Data",
        "Training",
        "Validation (chosen epoch)",
        "Costs and threshold",
        "Calibration",
        "Seen in training",
        "Versions",
    ]
    assert card_rows["split protocol"] == "video" and card_rows["threshold"] == "0.5000"
    assert card_rows["train"].startswith("8 videos (4 fake, 4 real), 64 crops")
    assert card_rows["evaluated videos the run trained or validated on"].startswith("0 of 2 (0.0%")
    assert card_rows["torch"] and card_rows["pyav"] and card_rows["command"]
    assert warnings_visible and card_in_view  # 1 validation video a class: the card warns, and the link reaches it
    assert video_rows == 1 + evaluated.video_scores.shape[0]
    assert any("fake" in row and "folder" in row for row in method_rows[1:])
    assert (tmp_path / "report.png").stat().st_size > 20_000


def test_report_escapes_names_it_shows(evaluated, tmp_path):
    from dataclasses import replace

    from unmask.decision.record import CheckpointRecord
    from unmask.evaluation.report import write_report
    from unmask.models.registry import get_spec

    evil = "<script>alert('unmask')</script>"
    card = evaluated.metrics["model_card"]
    metrics = {
        **evaluated.metrics,
        "dataset": evil,
        "model": evil,
        "model_card": {**card, "data": {**card["data"], "dataset": evil}, "warnings": [evil]},
    }
    result = replace(
        evaluated, out_dir=tmp_path, metrics=metrics, video_scores=evaluated.video_scores.assign(method=evil)
    )
    record = CheckpointRecord(spec=get_spec("mobilenetv3_small"), size_px=64, temperature=1.0, threshold=0.5)
    page = write_report(result, run_dir=tmp_path, data_root=tmp_path, model=None, record=record, per_case=0).read_text()
    assert "<script>" not in page
    # the title, the data line, every video's row, the card's dataset and its warning
    assert page.count("&lt;script&gt;") == 2 + len(evaluated.video_scores) + 2


def test_table_shows_paper_and_video_protocols_side_by_side(small_run, prepared, evaluated, tmp_path):
    result, _ = small_run
    leak = evaluate(result.run_dir, prepared, tmp_path / "paper", protocol="paper", report=False, bootstrap=0)
    assert evaluated.metrics["seen_in_training"] == 0.0  # the video run's own test videos: unseen
    assert leak.metrics["seen_in_training"] > 0.5  # the paper test split's frames come from training videos
    table = make_table([leak.out_dir, evaluated.out_dir])
    assert list(table["protocol"]) == ["paper", "video"] and list(table["aggregation"]) == ["mean", "mean"]
    assert table.loc[0, "argmax acc"] == pytest.approx(leak.metrics["frame"]["raw_argmax"]["accuracy"])
    assert table.loc[0, "cost acc"] == pytest.approx(leak.metrics["frame"]["calibrated_cost"]["accuracy"])
    markdown = to_markdown(table)
    assert markdown.splitlines()[0].startswith("| model | trained on |") and "| paper |" in markdown
    assert "| video |" in markdown


def test_cross_dataset_on_every_crop_warns_of_crops_cut_unlike_the_training_data(small_run, tmp_path, caplog):
    from unmask.data.preparation import PrepareConfig, prepare
    from unmask.demo import make_demo_dataset
    from unmask.video import FrameSampler

    clips = make_demo_dataset(tmp_path / "other", clips_per_class=1, seconds=1.0, fps=8, size=(400, 300), seed=7)
    other = tmp_path / "other-crops"
    # the run trained on 64 px PNG crops with margin 1.3
    prepare(clips, other, PrepareConfig("folder", sampler=FrameSampler("uniform", 4), size=48, image_format="jpg"))
    with caplog.at_level("WARNING", logger="unmask.evaluation"):
        result = evaluate(
            small_run[0].run_dir,
            other,
            tmp_path / "cross",
            split="all",
            aggregation="confident",
            report=False,
            bootstrap=0,
        )
    assert result.metrics["frame"]["n"] == 8 and result.metrics["split"] == "all"
    assert (
        "cut unlike the run's training data (size 48 px, not 64 px as in training; format jpg, not png as in "
        "training)" in caplog.text
    )


def test_crops_cut_alike_give_no_warning_and_old_names_compare(small_run, prepared, caplog):
    from unmask.data.manifest import read_manifest
    from unmask.evaluation.evaluator import warn_crop_differences
    from unmask.decision.checkpoint import read_record

    record = read_record(small_run[0].checkpoint)
    _, manifest_meta = read_manifest(prepared)
    assert warn_crop_differences(record, manifest_meta, prepared) == [] and "cut unlike" not in caplog.text
    old = {**{k: v for k, v in manifest_meta.items() if k != "size"}, "size_px": 64, "margin": 1.5}
    assert warn_crop_differences(record, old, prepared) == ["margin 1.5, not 1.3 as in training"]


def test_bad_inputs_are_clear(small_run, prepared, tmp_path):
    run = small_run[0].run_dir
    with pytest.raises(UnmaskError, match="No checkpoint at"):
        evaluate(tmp_path, prepared, tmp_path / "e1")
    with pytest.raises(ManifestError, match="'official' protocol has no 'test' videos"):
        evaluate(run, prepared, tmp_path / "e2", protocol="official")
    with pytest.raises(UnknownNameError, match="Unknown aggregation 'mode'"):
        evaluate(run, prepared, tmp_path / "e3", aggregation="mode")
    with pytest.raises(UnknownNameError, match="Unknown split 'testing'"):
        evaluate(run, prepared, tmp_path / "e4", split="testing")


def _with_metadata(run_dir, out, **changes):
    """A copy of the run's checkpoint whose metadata says ``changes`` (and lacks the video calibration)."""
    from unmask.decision.checkpoint import load_tensors, read_metadata, save_checkpoint

    meta = {k: v for k, v in read_metadata(run_dir).items() if k != "video_calibration"}
    out.mkdir(parents=True)
    save_checkpoint(out / "model.safetensors", load_tensors(run_dir), {**meta, **changes})
    return out


def test_decisions_at_a_cost_threshold_with_a_deployment_prior(small_run, prepared, tmp_path, caplog, monkeypatch):
    from unmask.decision import calibration

    monkeypatch.setattr(calibration, "_WARNED", set())  # the warning is once per process
    import numpy as np
    from sklearn.metrics import confusion_matrix

    from unmask.decision.calibration import logit, sigmoid

    run = _with_metadata(
        small_run[0].run_dir,
        tmp_path / "run",
        temperature=2.0,
        bias=-1.0,
        calibration={"prior_fake": 0.5},
        costs={"missed_fake": 4.0, "false_alarm": 1.0},
    )
    result = evaluate(run, prepared, tmp_path / "eval", prior_fake=0.2, report=False, bootstrap=0)
    m = result.metrics
    assert m["threshold"] == pytest.approx(0.2) and m["calibration"]["prior_fake"] == 0.2
    frames = pd.read_csv(tmp_path / "eval" / "frame_scores.csv")
    margin = frames["logit_fake"] - frames["logit_real"]
    calibrated = sigmoid(margin / 2.0 - 1.0)
    # the prior shift: logit(p') = logit(p) + logit(0.2) - logit(0.5)
    np.testing.assert_allclose(frames["p_fake"], sigmoid(logit(calibrated) + logit(0.2) - logit(0.5)), rtol=1e-6)
    cost = confusion_matrix(frames["label"], frames["p_fake"] >= 0.2, labels=[0, 1]).tolist()
    argmax = confusion_matrix(frames["label"], margin >= 0, labels=[0, 1]).tolist()
    assert m["frame"]["calibrated_cost"]["confusion_matrix"] == cost
    assert m["frame"]["raw_argmax"]["confusion_matrix"] == argmax
    assert m["frame"]["calibrated_cost"]["threshold"] == pytest.approx(0.2) and cost != argmax
    # an old checkpoint without video calibration: the aggregated frame p_fake, shifted, and said so
    videos = pd.read_csv(tmp_path / "eval" / "video_scores.csv").set_index("video_id")
    means = frames.assign(p=calibrated).groupby("video_id")["p"].mean().loc[videos.index]
    np.testing.assert_allclose(videos["p_fake"], sigmoid(logit(means) + logit(0.2) - logit(0.5)), rtol=1e-6)
    assert "no video-level calibration" in caplog.text and "not recorded" in m["calibration"]["video"]["note"]
    with pytest.raises(UnmaskError, match="prior_fake must lie strictly between 0 and 1"):
        evaluate(run, prepared, tmp_path / "bad", prior_fake=1.5, report=False)

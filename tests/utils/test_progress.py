"""One progress mechanism: shares and ETAs of whole tasks, from train, evaluate and explain."""

import pandas as pd
import pytest

from unmask.utils.progress import Progress, ProgressMeter, format_seconds


def test_eta_is_the_average_pace_over_the_work_left():
    assert Progress("t", "", 25, 100, "work", 10.0).eta_s == pytest.approx(30.0)
    # work done before this call (a resumed run) counts in the share, not in the pace
    resumed = Progress("t", "", 25, 100, "work", 10.0, done_before=20)
    assert resumed.fraction == 0.25 and resumed.eta_s == pytest.approx(150.0)
    assert Progress("t", "", 0, 100, "work", 3.0).eta_s is None
    assert format_seconds(75) == "1:15" and format_seconds(3725) == "1:02:05"


def test_a_meter_reports_each_step_and_finishes_at_one():
    seen = []
    meter = ProgressMeter(seen.append, "job", 10, unit="item", done=4)
    meter.advance(2, stage="a", extra=1)
    meter.finish()
    assert [(p.stage, p.done, p.total, p.info) for p in seen] == [("a", 6, 10, {"extra": 1}), ("done", 6, 6, {})]
    assert seen[0].done_before == 4 and seen[-1].fraction == 1.0


def test_train_evaluate_and_explain_report_their_whole_work(prepared, tmp_path):
    from unmask.evaluation.evaluator import evaluate
    from unmask.predict.explanation import explain_file as explain
    from unmask.training.config import make_config
    from unmask.training.trainer import train

    config = make_config(
        model="mobilenetv3_small",
        pretrained=False,
        size=64,
        batch_size=8,
        workers=0,
        epochs=2,
        max_steps=2,
        early_stopping=0,
    )
    seen = []
    train(prepared, tmp_path / "run", config, progress=seen.append)
    runs = [p for p in seen if p.task == "train"]
    stages = list(dict.fromkeys(p.stage for p in runs))
    assert stages == [
        "epoch 1/2: training",
        "epoch 1/2: validation",
        "epoch 2/2: training",
        "epoch 2/2: validation",
        "calibration",
        "done",
    ]
    assert all(a.done <= b.done for a, b in zip(runs, runs[1:])) and runs[-1].fraction == 1.0
    n_val = len(pd.read_parquet(prepared / "manifest.parquet").query("split_video == 'val'"))
    # weighted work: each training image counts 3, each scored one 1; validation twice, calibration once
    assert runs[0].total == 2 * (3 * 2 * 8 + n_val) + n_val
    first_epoch = [p for p in runs if p.stage.startswith("epoch 1")]
    assert first_epoch[-1].done == 3 * 2 * 8 + n_val and runs[-2].eta_s is not None

    seen.clear()
    evaluate(tmp_path / "run", prepared, tmp_path / "eval", bootstrap=0, report=False, progress=seen.append)
    assert {p.task for p in seen} == {"evaluate"} and seen[-1].fraction == 1.0
    assert "scoring crops" in {p.stage for p in seen} and seen[-2].stage == "metrics"

    seen.clear()
    crop = prepared / pd.read_parquet(prepared / "manifest.parquet")["crop_path"].iloc[0]
    explain(
        tmp_path / "run", crop, tmp_path / "why", methods=["gradcam", "gradcam++"], is_crop=True, progress=seen.append
    )
    assert [p.done for p in seen if p.stage.endswith(" done")] == [2.0, 3.0]  # faces, then one per method
    assert seen[0].stage.startswith("finding faces") and seen[-1].fraction == 1.0

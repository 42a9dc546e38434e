"""benchmarks/realdata.py's views: which videos each one trains on and is judged on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "realdata.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("realdata_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest() -> pd.DataFrame:
    """A video of each family x label x split."""
    rows = [
        {"video_id": f"{family}-{label}-{split}", "dataset": family, "label": label, "split_official": split}
        for family in ("ffpp", "celebdf", "dfdc", "talkinghead")
        for label in (0, 1)
        for split in ("train", "val", "test")
    ]
    return pd.DataFrame(rows)


def _videos(manifest, mask, split=None) -> set[str]:
    rows = manifest[mask]
    if split == "test":
        rows = rows[rows["split_official"] == "test"]
    elif split == "fit":
        rows = rows[rows["split_official"] != "test"]
    return set(rows["video_id"])


def test_views_train_and_judge_on_their_own_videos():
    bench, manifest = _benchmark(), _manifest()
    th_fakes = {f"talkinghead-1-{s}" for s in ("train", "val")}
    # trained without any talking-head fake, judged on the talking heads' test videos alone
    rows = bench.view_rows(manifest, "no-th-fakes")
    assert not th_fakes & _videos(manifest, rows, "fit")
    assert {"talkinghead-0-train", "talkinghead-0-val", "ffpp-1-train", "dfdc-1-val"} <= _videos(manifest, rows, "fit")
    assert _videos(manifest, rows, "test") == {"talkinghead-0-test", "talkinghead-1-test"}
    # benchmarks and talking heads keep to their families; all and reals keep everything
    assert {v.split("-")[0] for v in _videos(manifest, bench.view_rows(manifest, "benchmarks"))} == {
        "ffpp",
        "celebdf",
        "dfdc",
    }
    assert {v.split("-")[0] for v in _videos(manifest, bench.view_rows(manifest, "talkinghead"))} == {"talkinghead"}
    for view in ("all", "reals"):
        assert bench.view_rows(manifest, view).all()
    assert bench.VIEWS["reals"]["overrides"] == {"real_only": True}


def test_configurations_are_valid_training_settings():
    from unmask.training.config import make_config

    bench = _benchmark()
    for name, settings in bench.CONFIGS.items():
        for view in bench.VIEWS.values():
            if view["overrides"].get("real_only") and settings.get("synthesize") == "none":
                continue  # run_one skips it: real videos alone need self-blended fakes
            make_config(protocol="official", **{**settings, **view["overrides"]})


def test_rows_give_each_family_its_own_auc_and_the_verdicts_at_the_costs():
    from unmask.decision.record import CheckpointRecord
    from unmask.models import get_spec

    bench = _benchmark()
    # face swaps ranked perfectly (fakes 0.9, reals 0.1); talking heads ranked backwards
    videos = pd.DataFrame(
        [
            {"video_id": f"{family}-{label}-{i}", "dataset": family, "label": label, "p_fake": p}
            for family, label, p in [
                ("ffpp", 1, 0.9),
                ("dfdc", 1, 0.9),
                ("celebdf", 0, 0.1),
                ("talkinghead", 1, 0.3),
                ("talkinghead", 0, 0.7),
            ]
            for i in range(2)
        ]
    )
    frames = videos.loc[videos.index.repeat(8), ["video_id", "p_fake"]].assign(frame_index=lambda f: range(len(f)))
    record = CheckpointRecord(spec=get_spec("mobilenetv3_small"), size_px=64, temperature=1.0, threshold=0.5)
    rows = {r["family"]: r for r in bench.family_rows(frames, videos, record, frames_sampled=8, bootstrap=0)}
    assert list(rows) == ["all", "face swaps", "ffpp", "celebdf", "dfdc", "talkinghead"]
    assert (
        rows["face swaps"]["auc"] == 1.0
        and rows["talkinghead"]["auc"] == 0.0
        and rows["all"]["auc"] == pytest.approx(20 / 24)
    )
    assert (rows["face swaps"]["fake"], rows["face swaps"]["real"]) == (4, 2)
    assert rows["ffpp"]["auc"] is None  # one class only
    assert rows["face swaps"]["verdict_accuracy"] == 1.0 and rows["talkinghead"]["verdict_accuracy"] == 0.0
    assert rows["all"]["inconclusive"] == 0.0 and rows["all"]["called_fake"] == 6


def test_the_validation_split_chooses_and_a_tie_goes_to_the_cheaper():
    bench = _benchmark()
    results = [
        {"config": "slow", "view": "all", "val_auc": 0.661, "cpu_min": 21.0},
        {"config": "cheap", "view": "all", "val_auc": 0.657, "cpu_min": 10.7, "val_families": {"face swaps": 0.4}},
        {"config": "worse", "view": "all", "val_auc": 0.62, "cpu_min": 5.0},
        {"config": "best", "view": "reals", "val_auc": 0.60, "cpu_min": 9.0},
        {"config": "other", "view": "reals", "val_auc": 0.54, "cpu_min": 1.0},
    ]
    text = bench.choices(results)
    assert "- all: cheap: validation 0.657 (face swaps 0.40)," in text and "- reals: best: validation 0.600," in text


def test_a_tie_on_validation_and_cost_goes_to_self_blending_and_frozen_stages():
    bench = _benchmark()
    fakes_only = {"synthesize": "none", "freeze_stages": 0}
    results = [
        {"config": "data-fakes", "view": "all", "val_auc": 0.657, "cpu_min": 10.6, "settings": fakes_only},
        {
            "config": "frozen",
            "view": "all",
            "val_auc": 0.655,
            "cpu_min": 10.9,
            "settings": {"synthesize": "sbi", "freeze_stages": 3},
        },
        {"config": "tuned", "view": "all", "val_auc": 0.656, "cpu_min": 10.8, "settings": {"synthesize": "sbi"}},
        {"config": "longer", "view": "all", "val_auc": 0.661, "cpu_min": 21.4, "settings": fakes_only},
        # twice the cost is no tie: the cheaper wins whatever it trains on
        {"config": "cheap", "view": "reals", "val_auc": 0.60, "cpu_min": 5.0, "settings": fakes_only},
        {"config": "dear", "view": "reals", "val_auc": 0.60, "cpu_min": 10.0, "settings": {"synthesize": "sbi"}},
    ]
    text = bench.choices(results)
    assert "- all: frozen: validation 0.655, 10.9 CPU minutes." in text
    assert "- reals: cheap: " in text

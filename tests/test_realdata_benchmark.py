"""benchmarks/realdata.py's views: which videos each one trains on and is judged on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

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
            make_config(protocol="official", **{**settings, **view["overrides"]})

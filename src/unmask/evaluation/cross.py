"""``unmask table --cross``: within- and cross-dataset results side by side, with 95% intervals.

A detector that learnt one dataset's quirks scores well on that dataset's test split and falls on
another's (DeepfakeBench's Xception: frame AUC 0.96 on FF++, 0.74 on Celeb-DF). This table puts
the two beside each other, one row per ``unmask evaluate`` folder, each labelled by the data the
run trained on and the data it was judged on (``ffpp -> celebdf``), the rows of one run together,
its within-dataset row first. Intervals are the bootstrap over videos of
:func:`unmask.evaluation.metrics.bootstrap_ci`: the ones ``evaluate`` recorded, or, for an
evaluation run with ``--bootstrap 0``, computed here from its score files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from unmask.evaluation.metrics import bootstrap_ci
from unmask.evaluation.table import load_metrics

CROSS_COLUMNS = [
    "train -> test",
    "model",
    "kind",
    "split",
    "videos",
    "fake / real",
    "video auc",
    "video auc 95% ci",
    "video acc",
    "video acc 95% ci",
    "frame auc",
    "frame auc 95% ci",
    "seen in training",
]
# Adapter names that say nothing about where the videos came from: the folder's name says more.
UNINFORMATIVE = {None, "csv", "folder"}


def format_interval(interval) -> str:
    """``[lo, hi]`` to 2 places, ``-`` where there is none (no bootstrap, or one class only)."""
    if not interval or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in interval):
        return "-"
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def _train_data(m: dict) -> str | None:
    """The prepared folder the evaluated run trained on: recorded by ``evaluate``, else its run's config."""
    if m.get("trained_data"):
        return m["trained_data"]
    config = Path(m.get("run", "")) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("data", {}).get("manifest")
    return None


def data_labels(folders: dict[str, str | None]) -> dict[str, str]:
    """Short names for prepared data folders: the dataset (``ffpp``) where that tells them apart,
    else the folder's name, else its last two parts.

    Args:
        folders: each folder's path mapped to its dataset adapter name.
    """

    def pick(key):
        names = {}
        for path, dataset in folders.items():
            names.setdefault(key(path, dataset), set()).add(path)
        return {path: name for name, paths in names.items() for path in paths if len(paths) == 1}

    by_dataset = pick(lambda p, d: d if d not in UNINFORMATIVE else Path(p).name)
    by_folder = pick(lambda p, d: Path(p).name)
    by_parent = pick(lambda p, d: "/".join(Path(p).parts[-2:]))
    return {p: by_dataset.get(p) or by_folder.get(p) or by_parent.get(p) or p for p in folders}


def _intervals(eval_dir: Path, m: dict, level: str, bootstrap: int) -> dict:
    """The level's recorded 95% intervals, or ones computed from its score file when none were recorded."""
    recorded = m[level].get("ci95")
    if recorded or not bootstrap:
        return recorded or {}
    scores = pd.read_csv(eval_dir / f"{level}_scores.csv")
    return bootstrap_ci(scores["label"], scores["p_fake"], scores["video_id"], m["threshold"], n=bootstrap)


def cross_table(eval_dirs, *, bootstrap: int = 1000) -> pd.DataFrame:
    """One row per ``unmask evaluate`` folder: video AUC and accuracy (the calibrated cost decision)
    and frame AUC, each with its 95% interval over videos, labelled ``train data -> test data``.

    ``kind`` is ``within`` when the run was judged on the prepared folder it trained on (then its
    ``test`` split, with ``seen in training`` 0 for an honest row), ``cross`` on any other folder.

    Args:
        eval_dirs: output folders of ``unmask evaluate`` (or their ``metrics.json``).
        bootstrap: resamples for an evaluation that recorded no intervals (0: leave them out).
    """
    loaded = []
    for eval_dir in eval_dirs:
        path = Path(eval_dir)
        m = load_metrics(path)
        loaded.append((path if path.is_dir() else path.parent, m, _train_data(m)))
    folders = {m["data"]: m.get("dataset") for _, m, _ in loaded}
    folders.update({train: m.get("trained_on") for _, m, train in loaded if train and train not in folders})
    labels = data_labels(folders)
    rows = []
    for eval_dir, m, train in loaded:
        video, frame = m["video"], m["frame"]
        video_ci, frame_ci = _intervals(eval_dir, m, "video", bootstrap), _intervals(eval_dir, m, "frame", bootstrap)
        support = video["calibrated_cost"]
        rows.append(
            {
                "train -> test": f"{labels[train] if train else m.get('trained_on') or '?'} -> {labels[m['data']]}",
                "model": m["model"],
                "kind": "within" if train == m["data"] else "cross",
                "split": m["split"],
                "videos": video["n"],
                "fake / real": f"{int(support['fake']['support'])} / {int(support['real']['support'])}",
                "video auc": video["scores"]["auc"],
                "video auc 95% ci": format_interval(video_ci.get("auc")),
                "video acc": support["accuracy"],
                "video acc 95% ci": format_interval(video_ci.get("accuracy")),
                "frame auc": frame["scores"]["auc"],
                "frame auc 95% ci": format_interval(frame_ci.get("auc")),
                "seen in training": m.get("seen_in_training"),
                "_run": m["run"],
                "_within": train == m["data"],
            }
        )
    table = pd.DataFrame(rows, columns=CROSS_COLUMNS + ["_run", "_within"])
    # Rows of one run together, in the order the runs were first given; its within row first.
    order = {run: i for i, run in reversed(list(enumerate(table["_run"])))}
    table = table.assign(_order=table["_run"].map(order)).sort_values(
        ["_order", "_within", "train -> test"], ascending=[True, False, True], kind="stable"
    )
    return (
        table[CROSS_COLUMNS].astype({"video auc": float, "video acc": float, "frame auc": float}).reset_index(drop=True)
    )

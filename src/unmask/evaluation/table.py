"""``unmask table``: the paper's results table, for several evaluations side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from unmask.errors import UnmaskError

COLUMNS = [
    "model",
    "trained on",
    "train protocol",
    "evaluated on",
    "protocol",
    "split",
    "aggregation",
    "seen in training",
    "argmax acc",
    "argmax prec",
    "argmax recall",
    "argmax f1",
    "auc",
    "cost acc",
    "video cost acc",
    "video auc",
]


def load_metrics(eval_dir: str | Path) -> dict:
    """The ``metrics.json`` of an ``unmask evaluate`` output folder."""
    path = Path(eval_dir)
    path = path / "metrics.json" if path.is_dir() else path
    if not path.is_file():
        raise UnmaskError(f"No metrics.json in {eval_dir}; run `unmask evaluate` first")
    return json.loads(path.read_text())


def make_table(eval_dirs) -> pd.DataFrame:
    """One row per evaluation: the paper's weighted-average accuracy, precision, recall and F1 (frame
    level, ``argmax``: the argmax of the raw logits, the paper's decision), frame AUC, and the
    accuracy of the cost-based decision on calibrated probabilities (``cost``) per frame and per
    video, with the video AUC. ``seen in training`` is the share of evaluated videos the run
    trained or validated on, matched by video identity: 0 for an honest row."""
    rows = []
    for eval_dir in eval_dirs:
        m = load_metrics(eval_dir)
        frame, video = m["frame"], m["video"]
        rows.append(
            {
                "model": m["model"],
                "trained on": m.get("trained_on"),
                "train protocol": m["train_protocol"],
                "evaluated on": m.get("dataset"),
                "protocol": m["protocol"],
                "split": m["split"],
                "aggregation": m["aggregation"],
                "seen in training": m.get("seen_in_training"),
                "argmax acc": frame["raw_argmax"]["accuracy"],
                "argmax prec": frame["raw_argmax"]["weighted"]["precision"],
                "argmax recall": frame["raw_argmax"]["weighted"]["recall"],
                "argmax f1": frame["raw_argmax"]["weighted"]["f1"],
                "auc": frame["scores"]["auc"],
                "cost acc": frame["calibrated_cost"]["accuracy"],
                "video cost acc": video["calibrated_cost"]["accuracy"],
                "video auc": video["scores"]["auc"],
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


METHOD_COLUMNS = [
    "model",
    "trained on",
    "evaluated on",
    "protocol",
    "split",
    "method",
    "label",
    "fake videos",
    "real videos",
    "video auc",
    "video acc",
    "video recall",
    "frame auc",
    "frame acc",
    "frame recall",
    "seen in training",
]
METHOD_NOTE = (
    "Each method's fake videos are paired with all real videos of their dataset (real videos are shared "
    "by all methods); a real source's row gives the share of its videos called real. Accuracy and recall "
    "(of fakes) at the run's decision threshold on the calibrated p_fake."
)


def make_method_table(eval_dirs) -> pd.DataFrame:
    """One row per evaluation, source dataset and manipulation method (and real source): AUC,
    accuracy and recall at the decision threshold, per video and per frame (see :data:`METHOD_NOTE`)."""
    rows = []
    for eval_dir in eval_dirs:
        m = load_metrics(eval_dir)
        for r in (m.get("per_method") or {}).get("rows", []):
            rows.append(
                {
                    "model": m["model"],
                    "trained on": m.get("trained_on"),
                    "evaluated on": r["dataset"],
                    "protocol": m["protocol"],
                    "split": m["split"],
                    "method": r["method"],
                    "label": r["label"],
                    "fake videos": r["videos_fake"],
                    "real videos": r["videos_real"],
                    **{
                        f"{level} {name}": r[level][key]
                        for level in ("video", "frame")
                        for name, key in (("auc", "auc"), ("acc", "accuracy"), ("recall", "recall"))
                    },
                    "seen in training": m.get("seen_in_training"),
                }
            )
    return pd.DataFrame(rows, columns=METHOD_COLUMNS)


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown table, numbers to 4 places (``-`` where undefined)."""

    def cell(v):
        if isinstance(v, float):
            return "-" if pd.isna(v) else f"{v:.4f}"
        return "-" if v is None else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)

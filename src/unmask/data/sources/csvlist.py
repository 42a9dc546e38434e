"""A CSV of ``path,label`` (label ``fake``/``real`` or ``1``/``0``), with optional ``method``,
``source_id`` and ``split`` columns; relative paths are taken from the CSV's folder."""

from __future__ import annotations

import csv
from pathlib import Path

from unmask.data.sources.base import FAKE, REAL, SPLITS, VideoItem
from unmask.errors import DatasetLayoutError

LABELS = {"fake": FAKE, "1": FAKE, "real": REAL, "0": REAL}


def list_csv(root: Path) -> list[VideoItem]:
    """List the videos named in the CSV file ``root``."""
    if not root.is_file():
        raise DatasetLayoutError(f"--dataset csv needs a CSV file with columns path,label; {root} is a folder")
    with open(root, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or [])
        if not {"path", "label"} <= columns:
            raise DatasetLayoutError(f"{root} must have a header with columns path,label (has: {', '.join(sorted(columns)) or 'none'})")
        items = []
        for number, row in enumerate(reader, 2):
            label = LABELS.get(str(row["label"]).strip().lower())
            if label is None:
                raise DatasetLayoutError(f"{root}:{number}: label {row['label']!r} is not fake, real, 1 or 0")
            text = (row["path"] or "").strip()
            if not text:
                raise DatasetLayoutError(f"{root}:{number}: the path cell is empty")
            path = Path(text) if Path(text).is_absolute() else root.parent / text
            video_id = _video_id(path, root.parent)
            split = (row.get("split") or "").strip() or None
            if split is not None and split not in SPLITS:
                raise DatasetLayoutError(f"{root}:{number}: split {split!r} is not train, val or test")
            method = (row.get("method") or "").strip() or ("fake" if label == FAKE else "real")
            source = (row.get("source_id") or "").strip() or video_id
            items.append(VideoItem(path, video_id, label, method, (source,), split))
    return items


def _video_id(path: Path, base: Path) -> str:
    """The path without suffix relative to the CSV's folder; ``external/...`` for a file elsewhere.

    Ids name the crop folders, so they never start with ``/`` or hold ``..``.
    """
    resolved = path.resolve()
    try:
        return resolved.relative_to(base.resolve()).with_suffix("").as_posix()
    except ValueError:
        return "external/" + resolved.with_suffix("").as_posix().lstrip("/")

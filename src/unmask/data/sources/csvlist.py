"""A CSV of ``path,label`` (label ``fake``/``real`` or ``1``/``0``), with optional ``method``,
``source_id``, ``split`` and ``dataset`` columns; relative paths are taken from the CSV's folder.

``dataset`` names where a row's video comes from (``ffpp``, ``celebdf`` ...) when one list mixes
several; it goes into the manifest's ``dataset`` column (else ``csv``), so results can be read
per source dataset and a run trained on one can be evaluated on the others."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from unmask.data.sources.base import FAKE, REAL, SPLITS, VideoItem
from unmask.errors import DatasetLayoutError

LABELS = {"fake": FAKE, "1": FAKE, "real": REAL, "0": REAL}


def list_csv(root: Path) -> list[VideoItem]:
    """List the videos named in the CSV file ``root``."""
    if not root.is_file():
        raise DatasetLayoutError(f"The csv layout needs a CSV file with columns path,label; {root} is a folder")
    try:
        # utf-8-sig: spreadsheet programs save CSV with a byte-order mark, which is not part of "path".
        with open(root, newline="", encoding="utf-8-sig") as fh:
            return _read_rows(root, csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetLayoutError(
            f"{root} is not a text CSV file ({str(exc)[:120]}); give a CSV with columns path,label"
        ) from None


def _read_rows(root: Path, reader: csv.DictReader) -> list[VideoItem]:
    """One item per row of the CSV ``root``, each row checked (label, path, split)."""
    columns = set(reader.fieldnames or [])
    if not {"path", "label"} <= columns:
        raise DatasetLayoutError(
            f"{root} must have a header with columns path,label (has: {', '.join(sorted(columns)) or 'none'})"
        )
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
        dataset = (row.get("dataset") or "").strip() or None
        items.append(VideoItem(path, video_id, label, method, (source,), split, dataset))
    return items


def _video_id(path: Path, base: Path) -> str:
    """The path without suffix relative to the CSV's folder; ``external/...`` for a file elsewhere.

    Ids name the crop folders, so they never start with ``/`` or hold ``..``. Links are not
    followed here (a looping one cannot be): :func:`unmask.data.sources.find_videos` does that.
    """
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(os.path.abspath(base)).with_suffix("").as_posix()
    except ValueError:
        return "external/" + absolute.with_suffix("").as_posix().lstrip("/")

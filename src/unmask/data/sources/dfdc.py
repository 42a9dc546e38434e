"""DFDC: folders of mp4 files, each with ``metadata.json`` mapping a file name to
``{"label": "REAL"|"FAKE", "original": "<real it was made from>.mp4", "split": ...}``."""

from __future__ import annotations

import json
from pathlib import Path

from unmask.data.sources.base import FAKE, REAL, SPLITS, VideoItem
from unmask.errors import DatasetLayoutError


def list_dfdc(root: Path) -> list[VideoItem]:
    """List DFDC videos from every ``metadata.json`` under ``root`` (one per part folder)."""
    metadata_files = sorted(root.rglob("metadata.json"))
    if not metadata_files:
        raise DatasetLayoutError(
            f"{root} is not a DFDC folder: expected part folders of .mp4 files, each with metadata.json"
        )
    items = []
    for meta_path in metadata_files:
        try:
            entries = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetLayoutError(f"{meta_path} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
            raise DatasetLayoutError(f'{meta_path} must map each file name to {{"label": "REAL"|"FAKE", ...}}')
        part = meta_path.parent.relative_to(root).as_posix()
        for name, entry in sorted(entries.items()):
            label = str(entry.get("label", "")).upper()
            if label not in ("REAL", "FAKE"):
                raise DatasetLayoutError(f"{meta_path}: {name} has label {entry.get('label')!r}, expected REAL or FAKE")
            path = meta_path.parent / name
            if not path.is_file():
                continue  # DFDC parts are often downloaded partially
            stem = Path(name).stem
            original = Path(entry.get("original") or name).stem
            split = entry.get("split") if entry.get("split") in SPLITS else None
            video_id = f"{part}/{stem}" if part != "." else stem
            if label == "FAKE":
                items.append(VideoItem(path, video_id, FAKE, "deepfake", (original,), split))
            else:
                items.append(VideoItem(path, video_id, REAL, "original", (stem,), split))
    return items

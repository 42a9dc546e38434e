"""The simplest layout: ``real/`` and ``fake/`` folders of videos (subfolders of ``fake/`` name the method)."""

from __future__ import annotations

from pathlib import Path

from unmask.data.sources.base import FAKE, REAL, VideoItem, video_files
from unmask.errors import DatasetLayoutError


def list_folder(root: Path) -> list[VideoItem]:
    """List videos under ``root/real`` and ``root/fake``; each video is its own source."""
    if not (root / "real").is_dir() or not (root / "fake").is_dir():
        raise DatasetLayoutError(f"{root} must hold real/ and fake/ folders of videos for --dataset folder")
    items = []
    for name, label in (("real", REAL), ("fake", FAKE)):
        for path in video_files(root / name):
            rel = path.relative_to(root)
            method = rel.parts[1] if len(rel.parts) > 2 else name
            video_id = rel.with_suffix("").as_posix()
            items.append(VideoItem(path, video_id, label, method, (video_id,)))
    return items

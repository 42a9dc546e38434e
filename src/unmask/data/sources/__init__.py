"""Dataset adapters: each turns a layout users hold on disk into a list of :class:`VideoItem`.

Register a new one by adding it to :data:`DATASETS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from unmask.data.sources.base import FAKE, REAL, VideoItem, check_root
from unmask.data.sources.celebdf import list_celebdf
from unmask.data.sources.csvlist import list_csv
from unmask.data.sources.dfdc import list_dfdc
from unmask.data.sources.ffpp import list_ffpp
from unmask.data.sources.folder import list_folder
from unmask.errors import DatasetLayoutError, unknown_name

DATASETS: dict[str, Callable[..., list[VideoItem]]] = {
    "celebdf": list_celebdf,
    "ffpp": list_ffpp,
    "dfdc": list_dfdc,
    "folder": list_folder,
    "csv": list_csv,
}


def list_videos(root: str | Path, dataset: str, **options) -> list[VideoItem]:
    """List the videos of the dataset at ``root`` laid out as ``dataset`` (see :data:`DATASETS`).

    Args:
        root: the dataset's top folder (for ``csv``: the CSV file).
        dataset: adapter name.
        **options: adapter options (``compression`` and ``methods`` for ``ffpp``).

    Returns:
        Items sorted by ``video_id``.

    Raises:
        DatasetLayoutError: the root is missing, empty or laid out otherwise; the message says
            what was expected.
    """
    if dataset not in DATASETS:
        raise unknown_name("dataset", dataset, DATASETS)
    items = DATASETS[dataset](check_root(root, dataset), **options)
    if not items:
        raise DatasetLayoutError(f"No videos found under {root} for --dataset {dataset}")
    ids = [item.video_id for item in items]
    if len(set(ids)) != len(ids):
        raise DatasetLayoutError(f"Two videos under {root} share a video id; rename one")
    return sorted(items, key=lambda item: item.video_id)


__all__ = ["DATASETS", "FAKE", "REAL", "VideoItem", "list_videos"]

"""What every dataset adapter returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unmask.errors import DatasetLayoutError
from unmask.video.reader import VIDEO_SUFFIXES

FAKE, REAL = 1, 0
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class VideoItem:
    """One video of a dataset.

    Attributes:
        path: the video file.
        video_id: unique within the dataset, stable across machines (used for shards and resume).
        label: 1 fake, 0 real.
        method: manipulation method for fakes (``Deepfakes``, ``Celeb-synthesis`` ...), the real
            source's name for reals (``original``, ``Celeb-real`` ...).
        source_ids: the people or source clips the video shows or is made from, its own first.
            Videos that share one are kept on one side of the ``video`` split.
        official_split: ``train``/``val``/``test`` where the dataset has official lists, else None.
        dataset: the dataset the video comes from, where a list mixes several (a CSV's
            ``dataset`` column); None: the adapter's name.
    """

    path: Path
    video_id: str
    label: int
    method: str
    source_ids: tuple[str, ...]
    official_split: str | None = None
    dataset: str | None = None


def check_root(root: str | Path, dataset: str) -> Path:
    """Return ``root`` as a Path, or raise one clear error if it is missing or empty."""
    root = Path(root)
    if not root.exists():
        raise DatasetLayoutError(
            f"Dataset root {root} does not exist; pass the folder that holds the {dataset} dataset"
        )
    if root.is_dir() and not any(root.iterdir()):
        raise DatasetLayoutError(f"Dataset root {root} is empty; pass the folder that holds the {dataset} dataset")
    return root


def video_files(folder: Path) -> list[Path]:
    """Video files (by suffix, any case) under ``folder``, recursively, sorted.

    Symbolic links are listed even when broken (dangling or looping), so that
    :func:`unmask.data.sources.find_videos` reports them instead of losing them without a word.
    """
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in VIDEO_SUFFIXES and (p.is_file() or (p.is_symlink() and not p.is_dir()))
    )

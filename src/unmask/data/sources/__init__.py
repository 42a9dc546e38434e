"""Dataset adapters: each turns a layout users hold on disk into a list of :class:`VideoItem`.

Register a new one by adding it to :data:`DATASETS`.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unmask.data.sources.base import FAKE, REAL, VideoItem, check_root
from unmask.data.sources.celebdf import list_celebdf
from unmask.data.sources.csvlist import list_csv
from unmask.data.sources.dfdc import list_dfdc
from unmask.data.sources.ffpp import list_ffpp
from unmask.data.sources.folder import list_folder
from unmask.errors import DatasetLayoutError, unknown_name

logger = logging.getLogger(__name__)

DATASETS: dict[str, Callable[..., list[VideoItem]]] = {
    "celebdf": list_celebdf,
    "ffpp": list_ffpp,
    "dfdc": list_dfdc,
    "folder": list_folder,
    "csv": list_csv,
}


@dataclass(frozen=True)
class Listing:
    """What :func:`find_videos` found.

    Attributes:
        items: the videos to prepare, one per file, sorted by ``video_id``.
        skipped: ``(item, reason)`` for files that are not prepared: broken symbolic links,
            second names (links) of a file already listed, and files an adapter found that are
            not videos (the ``folder`` layout's).
    """

    items: list[VideoItem]
    skipped: list[tuple[VideoItem, str]]


def safe_id(text: str) -> str:
    """``text`` with control characters (newline, tab, ESC ...) written as ``%XX``.

    Ids name folders and travel through CSV files and logs, where such characters break lines
    or terminals; the file's own name stays in ``VideoItem.path``.
    """
    return "".join(f"%{ord(c):02X}" if unicodedata.category(c) == "Cc" else c for c in text)


def find_videos(root: str | Path, dataset: str, **options) -> Listing:
    """List the videos of the dataset at ``root`` laid out as ``dataset``, and what was left out.

    Symbolic links are followed: a link to a file already listed is the same video (kept once,
    under the name that is not a link, with a warning), and a dangling or looping link is left
    out with its reason. Video ids are made safe (:func:`safe_id`).

    Raises:
        DatasetLayoutError: the root is missing, empty or laid out otherwise, no video is left,
            or two files get one video id (the message names both).
    """
    if dataset not in DATASETS:
        raise unknown_name("dataset", dataset, DATASETS)
    found = DATASETS[dataset](check_root(root, dataset), **options)
    # An adapter may return, beside its videos, files it left out (``skipped``): they are listed too.
    not_videos = [
        (dataclasses.replace(item, video_id=safe_id(item.video_id)), reason)
        for item, reason in getattr(found, "skipped", [])
    ]
    found = [
        dataclasses.replace(
            item, video_id=safe_id(item.video_id), source_ids=tuple(safe_id(s) for s in item.source_ids)
        )
        for item in found
    ]
    by_id: dict[str, VideoItem] = {}
    for item in found:
        if item.video_id in by_id:
            raise DatasetLayoutError(
                f"Two videos get the id {item.video_id!r}: {by_id[item.video_id].path} and "
                f"{item.path}; rename or remove one"
            )
        by_id[item.video_id] = item

    skipped, by_file = list(not_videos), {}
    # Real files before links, so that a link is what gives way to the file it points at.
    for item in sorted(found, key=lambda it: (it.path.is_symlink(), it.video_id)):
        try:
            target = item.path.resolve(strict=True)
            stat = target.stat()
        except FileNotFoundError:
            skipped.append(
                (
                    item,
                    f"dangling symbolic link: its target {os.readlink(item.path)} does not exist"
                    if item.path.is_symlink()
                    else f"no such file: {item.path}",
                )
            )
            continue
        except (RuntimeError, OSError) as exc:  # RuntimeError: Python 3.11's "Symlink loop"
            is_loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
            reason = "symbolic link loop" if is_loop else f"cannot be read ({exc})"
            skipped.append((item, reason))
            continue
        key = (stat.st_dev, stat.st_ino)  # also catches hard links
        if key in by_file:
            first = by_file[key]
            logger.warning("%s is the same file as %s: prepared once, as %s", item.path, first.path, first.video_id)
            skipped.append((item, f"same file as video {first.video_id} ({first.path}); prepared once, as that video"))
            continue
        by_file[key] = item
    items = sorted(by_file.values(), key=lambda item: item.video_id)
    for item, reason in skipped[len(not_videos) :]:  # the adapter reported its own in one line
        if not reason.startswith("same file"):
            logger.warning("%s left out: %s", item.path, reason)
    if not items:
        extra = f" ({len(skipped)} other files or broken links left out)" if skipped else ""
        raise DatasetLayoutError(f"No videos found under {root} for the {dataset} layout{extra}")
    return Listing(items, sorted(skipped, key=lambda s: s[0].video_id))


def list_videos(root: str | Path, dataset: str, **options) -> list[VideoItem]:
    """The videos :func:`find_videos` finds (sorted by ``video_id``), without what it left out.

    Args:
        root: the dataset's top folder (for ``csv``: the CSV file).
        dataset: adapter name.
        **options: adapter options (``compression`` and ``methods`` for ``ffpp``).

    Raises:
        DatasetLayoutError: the root is missing, empty or laid out otherwise; the message says
            what was expected.
    """
    return find_videos(root, dataset, **options).items


__all__ = ["DATASETS", "FAKE", "REAL", "Listing", "VideoItem", "find_videos", "list_videos", "safe_id"]

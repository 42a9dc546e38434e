"""The simplest layout: ``real/`` and ``fake/`` folders of videos (subfolders of ``fake/`` name the method).

Who is in each video can be given in a CSV of ``video,person`` (``ROOT/people.csv`` when present,
or any file passed as ``people``), so that the ``video`` split keeps each person's videos on one
side, as it does for the datasets that name their people. ``video`` is the path under ``ROOT``
(``real/alice_01.mp4``; the suffix may be left out); ``person`` names one person, or several
joined by ``|`` (a face swap's two people: ``alice|bob``). A video the file does not name is a
person of its own.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from unmask.data.sources.base import FAKE, REAL, VideoItem, video_files
from unmask.errors import DatasetLayoutError
from unmask.video.reader import VIDEO_SUFFIXES

logger = logging.getLogger(__name__)

PEOPLE_FILE = "people.csv"


def list_folder(root: Path, people: str | Path | None = None) -> list[VideoItem]:
    """List videos under ``root/real`` and ``root/fake``, with their people.

    Any file there that PyAV can open as a video is one, whatever its suffix; the other files are
    left out and listed in the result's ``skipped`` (see :class:`FolderItems`).

    Args:
        root: the dataset folder.
        people: CSV of ``video,person``; default ``root/people.csv`` if it exists, else every
            video is its own person.

    Raises:
        DatasetLayoutError: ``root`` lacks ``real/`` or ``fake/``, or the people file is missing
            or malformed.
    """
    if not (root / "real").is_dir() or not (root / "fake").is_dir():
        raise DatasetLayoutError(f"{root} must hold real/ and fake/ folders of videos for the folder layout")
    people_path = Path(people) if people is not None else root / PEOPLE_FILE
    persons = read_people(people_path, root) if people is not None or people_path.is_file() else None
    items = FolderItems()
    for name, label in (("real", REAL), ("fake", FAKE)):
        videos, others = _video_files(root / name)
        for path in videos:
            rel = path.relative_to(root)
            method = rel.parts[1] if len(rel.parts) > 2 else name
            video_id = rel.with_suffix("").as_posix()
            source_ids = persons.get(video_id, (video_id,)) if persons is not None else (video_id,)
            items.append(VideoItem(path, video_id, label, method, source_ids))
        for path, reason in others:
            rel = path.relative_to(root)
            method = rel.parts[1] if len(rel.parts) > 2 else name
            items.skipped.append((VideoItem(path, rel.as_posix(), label, method, (rel.as_posix(),)), reason))
    if items.skipped:
        logger.warning(
            "%d files under %s are not videos and are left out (listed in failures.csv), first: %s",
            len(items.skipped),
            root,
            items.skipped[0][0].path,
        )
    if persons is not None:
        listed = {item.video_id for item in items}
        unnamed = sum(item.video_id not in persons for item in items)
        unknown = sorted(set(persons) - listed)
        if unnamed:
            logger.warning(
                "%s names no person for %d of %d videos; each of those counts as a person of its own",
                people_path,
                unnamed,
                len(items),
            )
        if unknown:
            logger.warning(
                "%s names %d videos that are not under %s (first: %s)", people_path, len(unknown), root, unknown[0]
            )
    return items


class FolderItems(list):
    """The videos of a folder layout (a list of :class:`VideoItem`), with ``skipped``: ``(item,
    reason)`` for each other file found beside them, for the caller to report."""

    def __init__(self, *args):
        super().__init__(*args)
        self.skipped: list[tuple[VideoItem, str]] = []


def _video_files(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """``(videos, others)`` under ``folder``, recursively, sorted.

    A file whose suffix names a video is one (a broken or empty one fails later, with its reason);
    any other file is one when PyAV opens it and decodes a frame of a moving picture from it
    (``.mpg``, ``.ts``, ``.3gp``, ``.flv``, no suffix ...; see
    :func:`unmask.video.probe.media_kind`). The rest are ``others``, each with why it was left
    out: a still picture, or not a video PyAV can open.
    """
    from unmask.video.probe import IMAGE_FORMATS, media_kind

    pictures = set(IMAGE_FORMATS.values()) | {".jpeg", ".tiff"}

    videos = video_files(folder)
    known = set(videos)
    others = []
    for path in sorted(p for p in folder.rglob("*") if p not in known and p.is_file()):
        # a picture named as one is not opened (a folder of extracted frames would be slow to probe)
        kind = "image" if path.suffix.lower() in pictures else media_kind(path)
        if kind == "video":
            videos.append(path)
        else:
            others.append(
                (
                    path,
                    "a still picture, not a video"
                    if kind == "image"
                    else "not a video: PyAV cannot open it, or it holds no video stream",
                )
            )
    return sorted(videos), others


def read_people(path: Path, root: Path) -> dict[str, tuple[str, ...]]:
    """``{video id: people}`` from the CSV ``path`` of ``video,person`` (video paths under ``root``)."""
    if not path.is_file():
        raise DatasetLayoutError(f"The people file {path} does not exist; give a CSV with columns video,person")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets write a byte-order mark
            reader = csv.DictReader(fh)
            columns = set(reader.fieldnames or [])
            if not {"video", "person"} <= columns:
                raise DatasetLayoutError(
                    f"{path} must have a header with columns video,person (has: {', '.join(sorted(columns)) or 'none'})"
                )
            persons: dict[str, tuple[str, ...]] = {}
            for number, row in enumerate(reader, 2):
                video = _video_id((row["video"] or "").strip(), root)
                names = tuple(p.strip() for p in (row["person"] or "").split("|") if p.strip())
                if not video or not names:
                    raise DatasetLayoutError(f"{path}:{number}: both video and person must be given")
                if video in persons and persons[video] != names:
                    raise DatasetLayoutError(f"{path}:{number}: {video} is listed twice, with different people")
                persons[video] = names
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetLayoutError(
            f"{path} is not a text CSV file ({str(exc)[:120]}); give a CSV with columns video,person"
        ) from None
    return persons


def _video_id(text: str, root: Path) -> str:
    """The video id of a ``video`` cell: its path under ``root``, without a video suffix."""
    if not text:
        return ""
    path = Path(text)
    if path.is_absolute():
        try:
            path = path.relative_to(root.resolve() if not path.is_relative_to(root) else root)
        except ValueError:
            return path.as_posix()  # not under root: reported as naming no listed video
    if path.suffix.lower() in VIDEO_SUFFIXES:
        path = path.with_suffix("")
    return path.as_posix()

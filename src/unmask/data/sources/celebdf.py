"""Celeb-DF-v2: ``Celeb-real/idX_NNNN.mp4``, ``YouTube-real/NNNNN.mp4``,
``Celeb-synthesis/idX_idY_NNNN.mp4`` and ``List_of_testing_videos.txt`` (lines ``<label> <path>``,
label 1 = real). Videos in the list are the official test set, all others train."""

from __future__ import annotations

import logging
from pathlib import Path

from unmask.data.sources.base import FAKE, REAL, VideoItem, video_files
from unmask.errors import DatasetLayoutError

logger = logging.getLogger(__name__)
FOLDERS = {"Celeb-real": REAL, "YouTube-real": REAL, "Celeb-synthesis": FAKE}
TEST_LIST = "List_of_testing_videos.txt"


def _test_list(root: Path) -> set[str] | None:
    path = root / TEST_LIST
    if not path.is_file():
        logger.warning("%s has no %s: the official split is left empty", root, TEST_LIST)
        return None
    listed = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2 or parts[0] not in ("0", "1"):
                raise DatasetLayoutError(f"{path}:{number} is not '<0|1> <relative path>': {line!r}")
            listed.add(parts[1])
    return listed


def list_celebdf(root: Path) -> list[VideoItem]:
    """List Celeb-DF-v2 videos; the identity is the ``idX`` the clip was filmed of."""
    present = [name for name in FOLDERS if (root / name).is_dir()]
    if not present:
        raise DatasetLayoutError(
            f"{root} is not a Celeb-DF-v2 folder: expected Celeb-real/, YouTube-real/, Celeb-synthesis/ and {TEST_LIST}"
        )
    test = _test_list(root)
    items = []
    for folder in present:
        for path in video_files(root / folder):
            rel = path.relative_to(root).as_posix()
            parts = path.stem.split("_")
            if folder == "YouTube-real":
                ids = (f"yt{path.stem}",)
            elif folder == "Celeb-real":
                ids = (parts[0],)
            else:
                ids = tuple(p for p in parts if p.startswith("id")) or (path.stem,)
            split = None if test is None else ("test" if rel in test else "train")
            items.append(VideoItem(path, rel.rsplit(".", 1)[0], FOLDERS[folder], folder, ids, split))
    return items

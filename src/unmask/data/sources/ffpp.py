"""FaceForensics++: ``original_sequences/youtube/<comp>/videos/A.mp4`` and
``manipulated_sequences/<Method>/<comp>/videos/A_B.mp4``, with the official 720/140/140 split of
source ids shipped in ``unmask/data/resources/ffpp_splits`` (MIT, see NOTICE.md there)."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from importlib import resources
from pathlib import Path

from unmask.data.sources.base import FAKE, REAL, SPLITS, VideoItem
from unmask.errors import DatasetLayoutError

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
COMPRESSIONS = ("raw", "c23", "c40")
logger = logging.getLogger(__name__)
EXPECTED = (
    "original_sequences/youtube/<raw|c23|c40>/videos/NNN.mp4 and "
    "manipulated_sequences/<Method>/<raw|c23|c40>/videos/AAA_BBB.mp4"
)


@lru_cache(maxsize=1)
def official_splits() -> dict[str, str]:
    """Map each FF++ source id (``"004"``) to ``train``, ``val`` or ``test``."""
    folder = resources.files("unmask.data") / "resources" / "ffpp_splits"
    split_of = {}
    for split in SPLITS:
        for pair in json.loads((folder / f"{split}.json").read_text()):
            for source_id in pair:
                split_of[source_id] = split
    return split_of


def list_ffpp(root: Path, *, compression: str = "c23", methods: tuple[str, ...] | None = None) -> list[VideoItem]:
    """List FF++ videos of one compression level (``raw``, ``c23``, ``c40``), all methods by default."""
    if compression not in COMPRESSIONS:
        raise DatasetLayoutError(f"Unknown FF++ compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")
    originals = root / "original_sequences" / "youtube"
    manipulated = root / "manipulated_sequences"
    if not originals.is_dir() and not manipulated.is_dir():
        raise DatasetLayoutError(f"{root} is not a FaceForensics++ folder: expected {EXPECTED}")
    split_of = official_splits()
    items = []
    for path in sorted((originals / compression / "videos").glob("*.mp4")):
        items.append(
            VideoItem(
                path, f"original/{compression}/{path.stem}", REAL, "original", (path.stem,), split_of.get(path.stem)
            )
        )
    found = sorted(p.name for p in manipulated.iterdir() if p.is_dir()) if manipulated.is_dir() else []
    for method in methods or ():
        if method not in METHODS:
            raise DatasetLayoutError(f"Unknown FF++ method {method!r}; choose from {', '.join(METHODS)}")
        if method not in found:
            raise DatasetLayoutError(
                f"FF++ method {method!r} not found under {manipulated}; found: {', '.join(found) or 'none'}"
            )
    other = sorted(set(found) - set(METHODS))
    if other and not methods:
        # DeepFakeDetection's fakes come from actors/ originals with other names: not FF++'s split.
        logger.warning("ignoring %s under %s (not one of FF++'s methods)", ", ".join(other), manipulated)
    for method in methods or [m for m in METHODS if m in found]:
        for path in sorted((manipulated / method / compression / "videos").glob("*.mp4")):
            target, _, source = path.stem.partition("_")
            if not source:
                raise DatasetLayoutError(f"FF++ fake {path} is not named AAA_BBB.mp4")
            items.append(
                VideoItem(
                    path, f"{method}/{compression}/{path.stem}", FAKE, method, (target, source), split_of.get(target)
                )
            )
    if not items:
        present = sorted({p.parent.parent.name for p in root.glob("*_sequences/**/videos/*.mp4")})
        raise DatasetLayoutError(
            f"No FF++ videos of compression {compression!r} under {root} (found: {', '.join(present) or 'none'}); "
            f"expected {EXPECTED}"
        )
    return items

"""Write the hard set of face clips (see :mod:`unmask.testing.hard_set`) into a folder.

    python benchmarks/make_hard_set.py /tmp/unmask-hard-set             # all sources and conditions
    python benchmarks/make_hard_set.py DIR --conditions dark,profile --sources hopper

Sources: the real FF++ clips in ../shared/samples (where present) and the two public-domain
package portraits. Clips already in DIR are kept (``--overwrite`` to make them again).
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from unmask.testing.hard_set import CONDITIONS, NOFACE_CONDITIONS, clip_frames, make_hard_set, portrait_frames

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "ffpp"


def default_sources() -> dict:
    """Name -> frame maker: two real FF++ clips (640x480 and 1280x720) where present, two portraits."""
    sources = {}
    for name in ("004", "519"):
        path = SAMPLES / "original_sequences" / "youtube" / "c23" / "videos" / f"{name}.mp4"
        if path.is_file():
            sources[f"ffpp{name}"] = partial(clip_frames, path)
    sources["hopper"] = partial(portrait_frames, "hopper")
    sources["astronaut"] = partial(portrait_frames, "astronaut")
    return sources


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--conditions", default=",".join(CONDITIONS + NOFACE_CONDITIONS))
    parser.add_argument("--sources", default=None, help="comma-separated subset of the sources")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    wanted = args.conditions.split(",")
    sources = default_sources()
    if args.sources:
        sources = {k: v for k, v in sources.items() if k in args.sources.split(",")}
    clips = make_hard_set(
        args.out,
        sources,
        conditions=[c for c in wanted if c in CONDITIONS],
        noface=[c for c in wanted if c in NOFACE_CONDITIONS],
        overwrite=args.overwrite,
    )
    for clip in clips:
        print(clip.path)


if __name__ == "__main__":
    main()

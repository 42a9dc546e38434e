"""The detector table (docs/benchmarks/2026-11-face-detectors.md): faces found per hard condition,
false boxes, ms per frame.

Runs the face step exactly as ``prepare`` builds it (``make_extractor``) over the hard set of
``benchmarks/make_hard_set.py`` (made first if missing), for each detector: the first pass alone,
passes 1 and 2 with bridging, passes 1, 2 and 3 with bridging (the default before the small-face
pass), and the default (passes 1, 2, small-face, 3, bridging):

    python benchmarks/face_detectors.py                       # mtcnn and haar, hard set in /tmp
    python benchmarks/face_detectors.py --detectors mtcnn --hard-set DIR
    python benchmarks/face_detectors.py --detectors mtcnn --sources ffpp519 --conditions tiny_dark,noface,noface_dark
    python benchmarks/face_detectors.py --normal      # ordinary clips: one pass vs the default, ms per frame

Per configuration and condition it prints the frames with a face (summed over the sources, each
clip 32 sampled frames; a ``cutaway`` clip's 24 face frames) split by the pass that found it, the
frames with a (false) box among the faceless frames (the no-face clips, the cut of a ``cutaway``
clip), and milliseconds per sampled frame (decoding excluded).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_hard_set import default_sources  # noqa: E402

from unmask.data.config import PrepareConfig  # noqa: E402
from unmask.data.crop_video import make_extractor  # noqa: E402
from unmask.testing.hard_set import CONDITIONS, NOFACE_CONDITIONS, make_hard_set  # noqa: E402
from unmask.video import FrameSampler, sample_frames  # noqa: E402


def measure(extractor, frames, faceless) -> tuple[dict, int, float]:
    """``({pass: face frames with a face}, faceless frames with a box, ms per frame)`` of one clip."""
    t0 = time.perf_counter()
    crops = extractor(frames)
    ms = (time.perf_counter() - t0) * 1000 / len(frames)
    by_pass, false = defaultdict(set), set()
    for crop in crops:
        t = next(i for i, f in enumerate(frames) if f.index == crop.frame_index)
        (false if t in faceless else by_pass[crop.det_pass]).add(t)
    return {k: len(v) for k, v in by_pass.items()}, len(false), ms


def compare_on_normal_clips(detector: str, rounds: int = 3) -> None:
    """ms per frame of the single pass and of the default face step on the FF++ sample clips,
    interleaved clip by clip so that other work on the machine weighs on both alike."""
    from make_hard_set import SAMPLES

    paths = sorted(SAMPLES.rglob("*.mp4"))
    if not paths:
        raise SystemExit(f"no clips under {SAMPLES}")
    base = PrepareConfig("folder", detector=detector)
    extractors = {
        "one pass": make_extractor(
            replace(base, second_pass=False, near_pass=False, small_face_pass=False, bridge_max_gap=0)
        ),
        "default (all passes, bridging)": make_extractor(base),
    }
    clips = [sample_frames(p, FrameSampler()) for p in paths]
    seconds, passes = defaultdict(float), defaultdict(lambda: defaultdict(int))
    for _ in range(rounds):
        for frames in clips:
            for label, extractor in extractors.items():
                t0 = time.perf_counter()
                for crop in extractor(frames):
                    passes[label][crop.det_pass] += 1
                seconds[label] += time.perf_counter() - t0
    n = rounds * sum(len(f) for f in clips)
    print(f"{len(paths)} FF++ sample clips, {n // rounds} frames, {rounds} rounds interleaved; detector {detector}\n")
    print("| face step | ms per frame | crops by pass |")
    print("|---|---|---|")
    for label in extractors:
        print(f"| {label} | {seconds[label] / n * 1000:.1f} | {dict(passes[label])} |")
    ratio = seconds["default (all passes, bridging)"] / seconds["one pass"]
    print(f"\ndefault / one pass: {ratio:.2f}x (goal <= 1.2)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hard-set", type=Path, default=Path("/tmp/unmask-hard-set"))
    parser.add_argument("--detectors", default="mtcnn,haar")
    parser.add_argument("--conditions", default=None, help="comma-separated subset of the conditions")
    parser.add_argument("--sources", default=None, help="comma-separated subset of the sources")
    parser.add_argument("--normal", action="store_true", help="time ordinary clips instead (../shared/samples)")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core per worker, as prepare runs it
    if args.normal:
        return compare_on_normal_clips(args.detectors.split(",")[0])

    sources = default_sources()
    if args.sources:
        sources = {k: v for k, v in sources.items() if k in args.sources.split(",")}
    wanted = args.conditions.split(",") if args.conditions else CONDITIONS + NOFACE_CONDITIONS
    clips = make_hard_set(
        args.hard_set,
        sources,
        conditions=[c for c in CONDITIONS if c in wanted],
        noface=[c for c in NOFACE_CONDITIONS if c in wanted],
    )
    frames = {c.path: sample_frames(c.path, FrameSampler()) for c in clips}
    print(f"{len(clips)} clips in {args.hard_set}; {os.cpu_count()} cores, cv2 threads 1\n")
    print(
        "| detector | passes | condition | face frames with a face (pass 1 + 2 + small + 3 + bridged) / face frames | "
        "worst clip | faceless frames with a (false) box | ms per frame |"
    )
    print("|---|---|---|---|---|---|---|")
    configs = (
        ("1", dict(second_pass=False, near_pass=False, small_face_pass=False, bridge_max_gap=0)),
        ("1+2, bridged", dict(near_pass=False, small_face_pass=False)),
        ("1+2+3, bridged", dict(small_face_pass=False)),
        ("1+2+small+3, bridged (default)", {}),
    )
    for name in args.detectors.split(","):
        base = PrepareConfig("folder", detector=name)
        for label, changes in configs:
            extractor = make_extractor(replace(base, **changes))
            rows = defaultdict(
                lambda: {"1": 0, "2": 0, "small": 0, "3": 0, "bridged": 0, "n": 0, "boxes": 0, "ms": [], "worst": None}
            )
            for clip in clips:
                faceless = set(clip.faceless_frames)
                counts, boxes, ms = measure(extractor, frames[clip.path], faceless)
                row = rows[clip.condition]
                for k, v in counts.items():
                    row[k] += v
                face_frames = len(frames[clip.path]) - len(faceless)
                row["n"] += face_frames
                row["boxes"] += boxes
                row["ms"].append(ms)
                if face_frames:
                    found = (sum(counts.values()), face_frames)
                    row["worst"] = min(row["worst"] or found, found, key=lambda f: f[0] / f[1])
                print(
                    f"  {name} [{label}] {clip.path.name}: {counts} false boxes={boxes} {ms:.0f} ms/frame",
                    file=sys.stderr,
                    flush=True,
                )
            for condition, row in rows.items():
                found = row["1"] + row["2"] + row["small"] + row["3"] + row["bridged"]
                print(
                    f"| `{name}` | {label} | {condition} | {found} ({row['1']} + {row['2']} + {row['small']} + {row['3']} + "
                    f"{row['bridged']}) / {row['n']} | {'%d/%d' % row['worst'] if row['worst'] else ''} | {row['boxes']} | "
                    f"{sum(row['ms']) / len(row['ms']):.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

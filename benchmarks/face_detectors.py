"""The README's detector table: faces found per hard condition, false boxes, ms per frame.

Runs the face step exactly as ``prepare`` builds it (``make_extractor``) over the hard set of
``benchmarks/make_hard_set.py`` (made first if missing), for each detector, with the second pass
and bridging off (today's single pass) and on (the default):

    python benchmarks/face_detectors.py                       # mtcnn and haar, hard set in /tmp
    python benchmarks/face_detectors.py --detectors mtcnn --hard-set DIR
    python benchmarks/face_detectors.py --normal      # ordinary clips: one pass vs the default, ms per frame

Per configuration and condition it prints the frames with a face (summed over the sources, each
clip 32 sampled frames) split by the pass that found it, the frames with a (false) box in the no-face clips,
and milliseconds per sampled frame (decoding excluded).
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

from unmask.data.crop_video import PrepareConfig, make_extractor  # noqa: E402
from unmask.faces.hard_set import make_hard_set  # noqa: E402
from unmask.video import FrameSampler, sample_frames  # noqa: E402


def measure(extractor, frames) -> tuple[dict, float]:
    """``({pass: frames with a face}, ms per frame)`` of one clip."""
    t0 = time.perf_counter()
    crops = extractor(frames)
    ms = (time.perf_counter() - t0) * 1000 / len(frames)
    by_pass = defaultdict(set)
    for crop in crops:
        by_pass[crop.det_pass].add(crop.frame_index)
    return {k: len(v) for k, v in by_pass.items()}, ms


def compare_on_normal_clips(detector: str, rounds: int = 3) -> None:
    """ms per frame of the single pass and of the default face step on the FF++ sample clips,
    interleaved clip by clip so that other work on the machine weighs on both alike."""
    from make_hard_set import SAMPLES

    paths = sorted(SAMPLES.rglob("*.mp4"))
    if not paths:
        raise SystemExit(f"no clips under {SAMPLES}")
    base = PrepareConfig("folder", detector=detector)
    extractors = {"one pass": make_extractor(replace(base, second_pass=False, bridge_max_gap=0)),
                  "default (two passes, bridging)": make_extractor(base)}
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
    ratio = seconds["default (two passes, bridging)"] / seconds["one pass"]
    print(f"\ndefault / one pass: {ratio:.2f}x (goal <= 1.2)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hard-set", type=Path, default=Path("/tmp/unmask-hard-set"))
    parser.add_argument("--detectors", default="mtcnn,haar")
    parser.add_argument("--conditions", default=None, help="comma-separated subset of the conditions")
    parser.add_argument("--normal", action="store_true", help="time ordinary clips instead (../shared/samples)")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core per worker, as prepare runs it
    if args.normal:
        return compare_on_normal_clips(args.detectors.split(",")[0])

    clips = make_hard_set(args.hard_set, default_sources())
    if args.conditions:
        clips = [c for c in clips if c.condition in args.conditions.split(",")]
    frames = {c.path: sample_frames(c.path, FrameSampler()) for c in clips}
    print(f"{len(clips)} clips in {args.hard_set}; {os.cpu_count()} cores, cv2 threads 1\n")
    print("| detector | passes | condition | frames with a face (pass 1 + pass 2 + bridged) / frames | "
          "worst clip | frames with a (false) box in no-face clips | ms per frame |")
    print("|---|---|---|---|---|---|---|")
    for name in args.detectors.split(","):
        base = PrepareConfig("folder", detector=name)
        for label, config in (("1", replace(base, second_pass=False, bridge_max_gap=0)), ("1+2, bridged", base)):
            extractor = make_extractor(config)
            rows = defaultdict(lambda: {"1": 0, "2": 0, "bridged": 0, "n": 0, "boxes": 0, "ms": [], "worst": 32})
            for clip in clips:
                counts, ms = measure(extractor, frames[clip.path])
                boxes = sum(counts.values())
                row = rows[clip.condition]
                for k, v in counts.items():
                    row[k] += v
                row["n"] += len(frames[clip.path])
                row["boxes"] += boxes if not clip.has_face else 0
                row["ms"].append(ms)
                row["worst"] = min(row["worst"], sum(counts.values()))
                print(f"  {name} [{label}] {clip.path.name}: {counts} boxes={boxes} {ms:.0f} ms/frame",
                      file=sys.stderr, flush=True)
            for condition, row in rows.items():
                found = row["1"] + row["2"] + row["bridged"]
                boxes = row["boxes"] if condition.startswith("noface") else ""
                print(f"| `{name}` | {label} | {condition} | {found} ({row['1']} + {row['2']} + {row['bridged']}) "
                      f"/ {row['n']} | {row['worst']}/32 | {boxes} | {sum(row['ms']) / len(row['ms']):.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()

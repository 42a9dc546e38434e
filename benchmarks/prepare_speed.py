"""How close ``unmask prepare`` comes to its bare parts, measured on the same clips in one run.

Three timings, each with ``--workers`` processes (both cores busy on a 2-core machine):

1. bare decoding: ``sample_frames`` on every video, frames dropped;
2. bare decoding + detection: the same, plus the face detector on the frames;
3. ``prepare`` end to end: listing, decoding, detection, tracking, cropping, writing PNGs, the
   done-records and the manifest with its splits, worker start-up included.

The ratio (2) / (3) is the share of prepare's time that is the real work; the goal is >= 0.9.

    python benchmarks/prepare_speed.py                 # the FF++ samples in ../shared, else demo clips
    python benchmarks/prepare_speed.py --clips DIR     # any folder-layout dataset (real/, fake/)
    python benchmarks/prepare_speed.py --engine ray    # prepare on Ray against the local engine

With ``--engine ray`` it times ``prepare`` with the local engine and with ``--engine ray`` instead,
alternated over the rounds, on the same clips with as many workers: the ratio local / Ray
throughput is the engine's cost (goal >= 0.85). The Ray cluster is started before the timing, as
one a user already has (``--address auto``); its workers' start-up is timed, as the local ones' is.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from unmask.data.preparation import PrepareConfig, prepare
from unmask.data.sources import list_videos
from unmask.demo import make_demo_dataset
from unmask.faces import create_detector
from unmask.faces.extract import detect_frames
from unmask.video import FrameSampler, sample_frames

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "ffpp"
_DETECTOR = None


def _init(detector: str):
    import cv2

    global _DETECTOR
    cv2.setNumThreads(1)
    _DETECTOR = create_detector(detector)


def _decode(path: str) -> int:
    return len(sample_frames(path, FrameSampler()))


def _decode_detect(path: str) -> int:
    return sum(bool(d) for d in detect_frames(_DETECTOR, sample_frames(path, FrameSampler())))


def _folder_of_copies(source: Path, dataset: str, repeat: int, into: Path) -> Path:
    """A folder-layout dataset holding each video of ``source`` ``repeat`` times (copies: ``list_videos``
    prepares links to one file once)."""
    for item in list_videos(source, dataset):
        for r in range(repeat):
            label = "fake" if item.label else "real"
            copy = into / label / f"{item.video_id.replace('/', '_')}_{r}{item.path.suffix}"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item.path, copy)
    return into


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, help="folder-layout dataset (default: FF++ samples, else demo clips)")
    parser.add_argument("--repeat", type=int, default=3, help="use each video this many times")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--detector", default="mtcnn")
    parser.add_argument("--rounds", type=int, default=3, help="alternate the bare run and prepare this many times")
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="ray: time prepare --engine ray against the local engine instead",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.clips:
            source, dataset, what = args.clips, "folder", str(args.clips)
        elif SAMPLES.is_dir():
            source, dataset, what = SAMPLES, "ffpp", "the 4 FF++ c23 sample clips (640x480 and 1280x720)"
        else:
            source, dataset = make_demo_dataset(tmp / "demo", clips_per_class=4, seconds=10, size=(640, 480)), "folder"
            what = "8 synthetic 640x480 10 s demo clips"
        root = _folder_of_copies(source, dataset, args.repeat, tmp / "clips")
        paths = [str(i.path) for i in list_videos(root, "folder")]
        if args.engine == "ray":
            return compare_engines(root, tmp, args, what)

        ctx = mp.get_context("spawn")
        t_decode = t_both = t_prepare = 0.0
        for r in range(args.rounds):  # alternated, so that a slower spell of the machine weighs on both
            with ctx.Pool(args.workers, initializer=_init, initargs=(args.detector,)) as pool:
                pool.map(_decode, paths[: args.workers])  # warm up: workers started, libraries loaded
                t0 = time.perf_counter()
                frames = sum(pool.map(_decode, paths, chunksize=1))
                t_decode += time.perf_counter() - t0
                t0 = time.perf_counter()
                faces = sum(pool.map(_decode_detect, paths, chunksize=1))
                t_both += time.perf_counter() - t0

            t0 = time.perf_counter()
            summary = prepare(
                root, tmp / f"out{r}", PrepareConfig("folder", detector=args.detector, workers=args.workers)
            )
            t_prepare += time.perf_counter() - t0
        t_decode, t_both, t_prepare = (t / args.rounds for t in (t_decode, t_both, t_prepare))

    n = len(paths)
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    print(
        f"clips: {what}, each x{args.repeat} = {n} videos, {frames} sampled frames (32 per video); "
        f"{args.rounds} rounds, mean seconds per round"
    )
    print(f"machine: {os.cpu_count()} cores, {cpu}; workers: {args.workers}; detector: {args.detector}\n")
    print("| stage | seconds | videos/s | frames or faces/s |")
    print("|---|---|---|---|")
    print(f"| bare decoding | {t_decode:.1f} | {n / t_decode:.2f} | {frames / t_decode:.0f} frames/s |")
    print(f"| bare decoding + detection | {t_both:.1f} | {n / t_both:.2f} | {faces / t_both:.1f} faces/s |")
    print(f"| `prepare` end to end | {t_prepare:.1f} | {n / t_prepare:.2f} | {summary.crops / t_prepare:.1f} faces/s |")
    print(f"\ndetection alone: ~{(t_both - t_decode) / frames * 1000 * args.workers:.0f} ms per frame per process")
    print(f"ratio prepare / (decode + detect) throughput: {t_both / t_prepare:.2f} (goal >= 0.9)")


def compare_engines(root: Path, tmp: Path, args, what: str) -> None:
    """``prepare`` with the local engine, then on Ray, ``args.rounds`` times; the same outputs."""
    import ray

    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    config = PrepareConfig("folder", detector=args.detector, workers=args.workers)
    seconds, crops = {"local": 0.0, "ray": 0.0}, {}
    for r in range(args.rounds):
        for engine in seconds:
            t0 = time.perf_counter()
            summary = prepare(root, tmp / f"{engine}{r}", config, engine=engine)
            seconds[engine] += time.perf_counter() - t0
            crops[engine] = summary.crops
    ray.shutdown()
    n = summary.videos
    print(
        f"clips: {what}, each x{args.repeat} = {n} videos; {args.rounds} rounds, mean seconds per round; "
        f"{os.cpu_count()} cores, {args.workers} workers, detector {args.detector}\n"
    )
    print("| engine | seconds | videos/s | face crops |")
    print("|---|---|---|---|")
    for engine, total in seconds.items():
        print(f"| {engine} | {total / args.rounds:.1f} | {n * args.rounds / total:.2f} | {crops[engine]} |")
    print(f"\nratio Ray / local throughput: {seconds['local'] / seconds['ray']:.2f} (goal >= 0.85)")


if __name__ == "__main__":
    main()

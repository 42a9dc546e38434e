"""How long ``unmask predict`` takes on one 10 s 720p clip, stage by stage, per backbone, on torch and exported.

The clip is the first 10 s of the FF++ sample 004.mp4 (1280x720, 25 fps) from ../shared/samples,
re-encoded with H.264; without the samples, a demo clip rendered at 1280x720. 32 frames are
sampled (uniform), faces found with the default detector (mtcnn), scored by each backbone with
random weights (speed does not depend on the weights; nothing is downloaded) at its own input
size. Each backbone is timed with the model loaded (the library, the server): one warm-up run,
then the median of ``--repeats`` runs. Then, for the first backbone, the same with the run
exported (``unmask export RUN --out DIR``: ONNX Runtime, no torch), and ``unmask predict`` from a
cold start (a new process, model on disk) on the run and on the export, alternated, median of
``--repeats``; each figure is set against its goal (cold exported <= 2.5 s, cold torch <= 5 s,
warm <= 1.5 s).

    python benchmarks/predict_speed.py                       # small backbones and the paper's four
    python benchmarks/predict_speed.py --models mobilenetv3_small --repeats 5
    python benchmarks/predict_speed.py --engine ray --inputs 8   # a folder on Ray against the local engine

With ``--engine ray`` it judges a folder of ``--inputs`` copies of the clip into a results file
with the local engine (one process) and with ``--engine ray`` (one Detector per worker, as many as
cores), alternated over ``--repeats`` rounds, with the first of ``--models``: the ratio local / Ray
time is what the engine costs or gains (goal >= 0.85). The Ray cluster is started before the
timing, as one a user already has; its workers' start-up (imports, model load) is timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "samples"
    / "ffpp"
    / "original_sequences"
    / "youtube"
    / "c23"
    / "videos"
    / "004.mp4"
)
MODELS = (
    "mobilenetv3_small",
    "efficientnet_lite0",
    "xception",
    "inception_resnet_v2",
    "efficientnetv2_s",
    "efficientnetv2_m",
)
STAGES = ("decode", "detect", "crop", "model", "aggregate", "total")


def make_clip(out: Path, seconds: float = 10.0) -> Path:
    """A 10 s 1280x720 H.264 clip: cut from the FF++ sample, or rendered from a demo portrait."""
    import numpy as np

    from unmask.demo import FACE_BOXES, _head, load_portraits, render_frames, write_video
    from unmask.video.reader import iter_decoded, open_video, to_rgb

    if SAMPLE.is_file():
        frames = []
        with open_video(SAMPLE) as container:
            for frame in iter_decoded(container, SAMPLE):
                frames.append(to_rgb(frame))
                if len(frames) == int(seconds * 25):
                    break
        while len(frames) < int(seconds * 25):  # loop the clip if it is shorter
            frames += frames[: int(seconds * 25) - len(frames)]
    else:
        head = _head(load_portraits()["astronaut"], FACE_BOXES["astronaut"])
        frames = render_frames(head, num_frames=int(seconds * 25), size=(1280, 720), seed=0)
    assert frames[0].shape == (720, 1280, 3) and np.all([f.shape == frames[0].shape for f in frames])
    return write_video(out, frames, fps=25, codec="libx264")


def record_for(name: str):
    """The checkpoint record of a random-weights ``name`` with unmask's default face step (32 frames)."""
    from unmask.data.config import PrepareConfig
    from unmask.decision.record import CheckpointRecord
    from unmask.models import get_spec
    from unmask.video import FrameSampler

    spec = get_spec(name)
    prepare = PrepareConfig("folder", sampler=FrameSampler("uniform", 32)).recorded()
    return CheckpointRecord(
        spec=spec, size_px=spec.default_size_px, temperature=1.0, prepare=prepare, data={"protocol": "video"}
    )


def time_loaded(name: str, clip: Path, repeats: int) -> dict:
    import torch

    from unmask import Detector
    from unmask.models import create_model

    torch.manual_seed(0)
    started = time.perf_counter()
    detector = Detector(create_model(name).eval(), record_for(name), device="cpu")
    load_s = time.perf_counter() - started
    detector.predict(clip)  # warm-up: first-call allocations, OpenCV's network set-up
    runs = [detector.predict(clip).timings for _ in range(repeats)]
    out = {stage: statistics.median(r[stage] for r in runs) for stage in STAGES}
    out["load"] = load_s
    return out


def save_run(name: str, tmp: Path) -> tuple[Path, Path]:
    """A random-weights run folder of ``name`` and its export folder."""
    from unmask.decision.checkpoint import save_checkpoint
    from unmask.models import create_model
    from unmask.predict.export import export_model

    run = tmp / f"run-{name}"
    model = create_model(name)
    save_checkpoint(
        run / "model.safetensors",
        {f"model.{k}": v for k, v in model.state_dict().items()},
        record_for(name).to_metadata(),
    )
    export_model(run, tmp / f"exported-{name}")
    return run, tmp / f"exported-{name}"


def time_loaded_export(folder: Path, clip: Path, repeats: int) -> dict:
    """:func:`time_loaded` for an export folder (ONNX Runtime)."""
    from unmask import Detector

    started = time.perf_counter()
    detector = Detector.load(folder)
    load_s = time.perf_counter() - started
    detector.predict(clip)
    runs = [detector.predict(clip).timings for _ in range(repeats)]
    out = {stage: statistics.median(r[stage] for r in runs) for stage in STAGES}
    out["load"] = load_s
    return out


def time_cold(clip: Path, models: dict[str, Path], repeats: int, threads: int | None = None) -> dict[str, float]:
    """Median seconds of ``unmask --help`` and of ``unmask predict CLIP --model M`` for each of
    ``models`` (label -> folder), each in a new process, the models alternated; ``LABEL cpu``: the
    CPU seconds (user + system) the process used, which other work on the machine changes less."""
    import os

    entry = Path(sys.executable).with_name("unmask")
    command = [str(entry)] if entry.is_file() else [sys.executable, "-m", "unmask"]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    import resource

    def cpu_s() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    times: dict[str, list[float]] = {"help": [], **{label: [] for label in models}}
    times.update({f"{label} cpu": [] for label in models})
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([*command, "--help"], check=True, capture_output=True)
        times["help"].append(time.perf_counter() - started)
        for label, folder in models.items():
            started, cpu = time.perf_counter(), cpu_s()
            result = subprocess.run(
                [*command, "predict", str(clip), "--model", str(folder)], capture_output=True, text=True, env=env
            )
            times[label].append(time.perf_counter() - started)
            times[f"{label} cpu"].append(cpu_s() - cpu)
            if result.returncode != 0:
                raise SystemExit(result.stderr)
    return {label: statistics.median(values) for label, values in times.items()}


def verdict(seconds: float, goal: float) -> str:
    return f"{seconds:.2f} s (goal <= {goal} s: {'met' if seconds <= goal else 'NOT met'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clip", type=Path, help="Use this clip instead of making one.")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default torch's: one per core). On a "
        "machine shared with other work, 1 avoids OpenMP's busy-waiting on taken cores.",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="ray: time a folder judged on Ray against the local engine instead",
    )
    parser.add_argument("--inputs", type=int, default=8, help="--engine ray: clips in the folder")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = args.clip or make_clip(tmp / "clip720p.mp4")
        names = [m for m in args.models.split(",") if m]
        if args.engine == "ray":
            return compare_engines(names[0], clip, tmp, args.inputs, args.repeats)
        print(
            f"clip {clip.name}; torch threads {torch.get_num_threads()}; {args.repeats} runs each, median; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        print("| model | " + " | ".join(STAGES) + " | load |")
        print("|---" * (len(STAGES) + 2) + "|")
        warm = {}
        for name in names:
            warm[name] = time_loaded(name, clip, args.repeats)
            print(f"| {name} | " + " | ".join(f"{warm[name][s]:.2f}" for s in (*STAGES, "load")) + " |", flush=True)
        run, exported = save_run(names[0], tmp)
        onnx = time_loaded_export(exported, clip, args.repeats)
        print(
            f"| {names[0]}, exported (ONNX Runtime) | "
            + " | ".join(f"{onnx[s]:.2f}" for s in (*STAGES, "load"))
            + " |",
            flush=True,
        )
        cold = time_cold(clip, {"torch": run, "exported": exported}, args.repeats, args.threads)
        print(f"\n{names[0]}, median of {args.repeats}; load average now {os.getloadavg()[0]:.2f}")
        print(f"cold `unmask predict`, exported: {verdict(cold['exported'], 2.5)}")
        print(f"cold `unmask predict`, torch:    {verdict(cold['torch'], 5.0)}")
        print(
            f"CPU seconds of a cold `unmask predict`: exported {cold['exported cpu']:.2f}, torch "
            f"{cold['torch cpu']:.2f} (ratio {cold['exported cpu'] / cold['torch cpu']:.2f}); wall-clock ratio "
            f"{cold['exported'] / cold['torch']:.2f}"
        )
        print(f"warm, exported: {verdict(onnx['total'], 1.5)}; warm, torch: {verdict(warm[names[0]]['total'], 1.5)}")
        print(f"`unmask --help`: {cold['help']:.2f} s")


def compare_engines(name: str, clip: Path, tmp: Path, inputs: int, rounds: int) -> None:
    """``predict_files`` on a folder with the local engine, then on Ray, ``rounds`` times."""
    import os
    import shutil

    import ray

    from unmask.decision.checkpoint import save_checkpoint
    from unmask.models import create_model
    from unmask.predict.files import predict_files

    run = tmp / f"run-{name}"
    save_checkpoint(
        run / "model.safetensors",
        {f"model.{k}": v for k, v in create_model(name).state_dict().items()},
        record_for(name).to_metadata(),
    )
    folder = tmp / "folder"
    folder.mkdir()
    for i in range(inputs):
        shutil.copyfile(clip, folder / f"clip{i:03d}.mp4")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    seconds = {"local": 0.0, "ray": 0.0}
    for r in range(rounds):
        for engine in seconds:
            t0 = time.perf_counter()
            summary = predict_files(run, [folder], tmp / f"{engine}{r}.jsonl", engine=engine, device="cpu")
            seconds[engine] += time.perf_counter() - t0
            assert summary.judged == inputs
    ray.shutdown()
    print(
        f"\n{inputs} copies of {clip.name}, model {name} (random weights), {rounds} rounds, mean seconds per "
        f"round; {os.cpu_count()} cores (local: one process; Ray: {os.cpu_count()} workers)\n"
    )
    print("| engine | seconds | inputs/s |")
    print("|---|---|---|")
    for engine, total in seconds.items():
        print(f"| {engine} | {total / rounds:.1f} | {inputs * rounds / total:.2f} |")
    print(f"\nratio Ray / local throughput: {seconds['local'] / seconds['ray']:.2f} (goal >= 0.85)")


if __name__ == "__main__":
    main()

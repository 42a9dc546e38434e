"""How close ``unmask train`` comes to the bare training step, on one device, in one run.

1. bare step: forward, loss, backward and Adam step on a batch already on the device, with the
   precision and memory layout ``train`` uses there;
2. ``train`` end to end: the same model and batch size reading the crops through the crop cache,
   augmenting and normalising whole batches on the device, validating every epoch, writing
   metrics, TensorBoard and checkpoints (model creation, the cache fill and the final
   calibration are reported apart).

The two are measured interleaved: after each of ``train``'s epochs (in its ``on_epoch``
callback, off ``train``'s clock) the bare step runs again, so a machine whose load changes
(a shared CPU) slows both alike. The ratio of an epoch's training throughput to the bare step's
measured beside it is the share of time that is real work; the goal is >= 0.9 from epoch 2 on.
Epoch 1 is the same as the others: the cache is filled before it (its cost is printed apart).

    python benchmarks/train_speed.py                                     # mobilenetv3_small, 224 px, CPU
    python benchmarks/train_speed.py --model efficientnet_lite0
    python benchmarks/train_speed.py --paper-models --device cuda       # the four paper backbones, own sizes
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from unmask.data.preparation import PrepareConfig, prepare
from unmask.demo import make_demo_dataset
from unmask.models import create_model, get_spec
from unmask.models.registry import PAPER_BACKBONES
from unmask.training.config import make_config
from unmask.training.trainer import autocast_dtype, train
from unmask.video import FrameSampler


class BareStep:
    """The bare training step of ``model_name``: what ``train`` would cost with free data."""

    def __init__(self, model_name: str, size: int, batch: int, device: torch.device, precision: str, compile_: bool):
        torch.manual_seed(0)
        self.device = device
        self.amp = autocast_dtype(precision, device)
        channels_last = device.type == "cuda"
        self.model = create_model(model_name).to(device).train()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = torch.compile(self.model) if compile_ else self.model
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.scaler = torch.amp.GradScaler(device.type) if self.amp == torch.float16 else None
        self.loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 1.0], device=device))
        self.x = torch.randn(batch, 3, size, size, device=device)
        if channels_last:
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, 2, (batch,), device=device)
        self.run(2)  # warm-up (and compilation)

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, steps: int) -> float:
        """Seconds per step over ``steps`` steps."""
        self._sync()
        started = time.perf_counter()
        for _ in range(steps):
            with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
                loss = self.loss_fn(self.net(self.x).float(), self.y)
            self.optimiser.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimiser)
                self.scaler.update()
            else:
                loss.backward()
                self.optimiser.step()
        self._sync()
        return (time.perf_counter() - started) / steps


def measure(name: str, data: Path, out: Path, args) -> dict:
    """One model: ``train`` for ``args.epochs`` epochs with the bare step measured after each."""
    device = torch.device(args.device)
    size = args.size or get_spec(name).default_size_px
    bare = BareStep(name, size, args.batch_size, device, args.precision, args.compile)
    marks: dict = {"bare": [], "epoch_end": [], "resume": []}

    def on_cache(cache):
        marks["cache"] = (cache.built_s, cache.nbytes)
        marks["cache_open"] = time.perf_counter()

    def on_epoch(row):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        marks["epoch_end"].append(time.perf_counter())
        marks["bare"].append(bare.run(args.bare_steps))  # off train's clock: the next epoch starts after it
        marks["resume"].append(time.perf_counter())

    config = make_config(model=name, pretrained=False, size=size, batch_size=args.batch_size, epochs=args.epochs,
                         max_steps=args.steps, workers=args.workers, early_stopping=0, device=args.device,
                         augment=not args.no_augment, precision=args.precision, compile=args.compile,
                         cache=not args.no_cache, cache_dir=str(out / "cache"))
    started = time.perf_counter()
    train(data, out / "run", config, on_epoch=on_epoch, on_cache=on_cache)
    finished = time.perf_counter()
    ends, resumes = marks["epoch_end"], marks["resume"]
    epoch_s = [ends[i] - resumes[i - 1] for i in range(1, len(ends))]  # epoch 2 on: steps, validation, writes
    ratios = [args.steps * marks["bare"][i - 1] / epoch_s[i - 1] for i in range(1, len(ends))]
    first = ends[0] - marks.get("cache_open", started)
    bare_s = statistics.median(marks["bare"])
    whole = finished - started - sum(r - e for r, e in zip(resumes, ends))  # train alone, start-up included
    return {
        "model": name, "size": size, "bare_s": bare_s, "epoch_step_s": statistics.median(epoch_s) / args.steps,
        "ratio": statistics.median(ratios), "ratios": ratios, "first_epoch_s": first,
        "cache_s": marks.get("cache", (0.0, 0))[0], "cache_gb": marks.get("cache", (0.0, 0))[1] / 1e9,
        "whole_ratio": args.epochs * args.steps * bare_s / whole, "whole_s": whole,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="backbone (repeat for several; default mobilenetv3_small)")
    parser.add_argument("--paper-models", action="store_true", help="the four paper backbones")
    parser.add_argument("--size", type=int, default=None, help="input side (default 224; 0: each backbone's own; "
                                                                "--paper-models: their own)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--bare-steps", type=int, default=10, help="bare steps measured after each epoch")
    parser.add_argument("--workers", type=int, default=None, help="data-loading processes (default: train's)")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--no-cache", action="store_true", help="decode the PNGs every epoch (the old data path)")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16, fp16 (as train's --precision)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both (slow start)")
    parser.add_argument("--clips", type=int, default=16, help="demo clips per class (40 crops each)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    models = list(PAPER_BACKBONES) if args.paper_models else (args.model or ["mobilenetv3_small"])
    if args.size is None:
        args.size = 0 if args.paper_models else 224
    crop_px = max(args.size or get_spec(m).default_size_px for m in models)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        clips = make_demo_dataset(tmp / "clips", clips_per_class=args.clips, seconds=4, fps=10)
        data = tmp / "data"
        prepare(clips, data, PrepareConfig("folder", sampler=FrameSampler("uniform", 40), size=crop_px,
                                           workers=os.cpu_count() or 1))
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                   platform.processor())
        gpu = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "none"
        print(f"machine: {os.cpu_count()} cores, {cpu}; GPU: {gpu}; torch {torch.__version__}; "
              f"data: {2 * args.clips} clips -> crops at {crop_px} px in {time.perf_counter() - started:.0f} s")
        print(f"batch {args.batch_size}, {args.epochs} epochs x {args.steps} steps, bare step measured "
              f"{args.bare_steps}x after each epoch; precision {args.precision}; loader workers: "
              f"{'auto' if args.workers is None else args.workers}; augmentation: {'off' if args.no_augment else 'on'}; "
              f"crops: {'PNG decoding' if args.no_cache else 'crop cache'}{'; compiled' if args.compile else ''}\n",
              flush=True)
        print("| model | px | bare step (s) | `train` s/step, epoch 2+ | images/s bare | images/s train | ratio, epoch 2+ "
              "(each epoch) | cache fill (s, GB) | epoch 1 (s) | whole run incl. start-up: ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
        for name in models:
            r = measure(name, data, tmp / name, args)
            print(f"| {name} | {r['size']} | {r['bare_s']:.3f} | {r['epoch_step_s']:.3f} | "
                  f"{args.batch_size / r['bare_s']:.1f} | {args.batch_size / r['epoch_step_s']:.1f} | "
                  f"**{r['ratio']:.2f}** ({', '.join(f'{x:.2f}' for x in r['ratios'])}) | "
                  f"{r['cache_s']:.1f}, {r['cache_gb']:.2f} | {r['first_epoch_s']:.1f} | {r['whole_ratio']:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()

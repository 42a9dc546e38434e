"""How close ``unmask train`` comes to the bare training step on the very batches it runs, on one device.

1. bare step: forward, loss, backward and Adam step on batches already on the device, with the
   precision and memory layout ``train`` uses there: the first ``--bare-steps`` batches ``train``
   ran in the epoch just finished (self-blended twins included, so the same images);
2. ``train`` end to end: the same model reading the crops through the crop cache, making the
   self-blended twins (default preset), augmenting and normalising whole batches on the device,
   validating every epoch, writing metrics, TensorBoard and checkpoints (model creation, the
   cache fill and the final calibration are reported apart).

The two are measured interleaved: after each of ``train``'s epochs (in its ``on_epoch``
callback, off ``train``'s clock) the bare step runs again, so a machine whose load changes
(a shared CPU) slows both alike. The ratio of an epoch's training throughput (images a second,
twins included) to the bare step's measured beside it is the share of time that is real work;
the goal is >= 0.9 from epoch 2 on. Beside it, the twins' share: what making one batch's twins
in the training process costs, over a training step (where the twins are made in loader
workers, the time they would have added).

``train``'s batches are seen by wrapping :func:`unmask.training.trainer.train_one_epoch`'s loader
(a benchmark's tap, not an interface).

    python benchmarks/train_speed.py                                     # mobilenetv3_small, 224 px, CPU
    python benchmarks/train_speed.py --workers 0 --workers 1 --augment on
    python benchmarks/train_speed.py --model efficientnet_lite0
    python benchmarks/train_speed.py --paper-models --device cuda       # the four paper backbones, own sizes
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from unmask.data.crops import read_batch
from unmask.data.preparation import PrepareConfig, prepare
from unmask.demo import make_demo_dataset
from unmask.models import create_model, get_spec
from unmask.models.registry import PAPER_BACKBONES
from unmask.training import trainer
from unmask.training.config import make_config
from unmask.training.sbi import BlendedCrops, SelfBlendTwins
from unmask.video import FrameSampler


class Tap:
    """``train_one_epoch``'s loader, seen: keeps the epoch's first ``keep`` batches and counts its images."""

    def __init__(self, loader, keep: int):
        self.loader, self.keep = loader, keep
        self.batches: list = []
        self.sizes: list[int] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y, positions in self.loader:
            if len(self.batches) < self.keep:
                self.batches.append((x, y, positions))
            self.sizes.append(len(y))
            yield x, y, positions


@contextlib.contextmanager
def tap_training(keep: int):
    """While open, ``train`` runs its epochs through :class:`Tap` s (one an epoch, in the list given)."""
    taps: list[Tap] = []
    original = trainer.train_one_epoch

    def train_one_epoch(model, loader, *args, **kwargs):
        taps.append(Tap(loader, keep))
        return original(model, taps[-1], *args, **kwargs)

    trainer.train_one_epoch = train_one_epoch
    try:
        yield taps
    finally:
        trainer.train_one_epoch = original


class BareStep:
    """The bare training step of ``model_name``: what ``train`` would cost with free data."""

    def __init__(self, model_name: str, device: torch.device, precision: str, compile_: bool):
        torch.manual_seed(0)
        self.device = device
        self.amp = trainer.autocast_dtype(precision, device)
        self.model = create_model(model_name).to(device).train()
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = torch.compile(self.model) if compile_ else self.model
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.scaler = torch.amp.GradScaler(device.type) if self.amp == torch.float16 else None
        self.loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 1.0], device=device))
        self.warm = False

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _step(self, x, y):
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            loss = self.loss_fn(self.net(x).float(), y)
        self.optimiser.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimiser)
            self.scaler.update()
        else:
            loss.backward()
            self.optimiser.step()

    def images_per_s(self, batches: list) -> float:
        """Images a second over one step on each of ``batches`` (``(x, y, _)`` as ``train`` ran them)."""
        if not self.warm:
            for x, y, _ in batches[:2]:  # warm-up (and compilation)
                self._step(x, y)
            self.warm = True
        self._sync()
        started = time.perf_counter()
        for x, y, _ in batches:
            self._step(x, y)
        self._sync()
        return sum(len(y) for _, y, _ in batches) / (time.perf_counter() - started)


def twins_seconds(loader, batches: list, batch_size: int) -> float:
    """Seconds to make one batch's twins in this process (0 without self-blended fakes), on ``batches``' crops."""
    dataset = getattr(loader.loader, "dataset", None)
    if not isinstance(dataset, BlendedCrops):
        return 0.0
    seconds = []
    for seed, (_, _, positions) in enumerate(batches):
        x, y, drawn = read_batch(dataset.dataset, positions[:batch_size].tolist())
        started = time.perf_counter()
        SelfBlendTwins(dataset.ellipses, dataset.ratio, torch.Generator().manual_seed(seed))(x, y, drawn)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def measure(name: str, data: Path, out: Path, args, workers: int | None, augment: bool) -> dict:
    """One model: ``train`` for ``args.epochs`` epochs with the bare step measured after each on its batches."""
    device = torch.device(args.device)
    size = args.size or get_spec(name).default_size_px
    bare = BareStep(name, device, args.precision, args.compile)
    marks: dict = {"bare": [], "twins": [], "epoch_end": [], "resume": []}

    def on_cache(cache):
        marks["cache"] = (cache.built_s, cache.nbytes)
        marks["cache_open"] = time.perf_counter()

    def on_epoch(row):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        marks["epoch_end"].append(time.perf_counter())
        tap = taps[-1]  # off train's clock from here: the next epoch starts after it
        marks["bare"].append(bare.images_per_s(tap.batches))
        marks["twins"].append(twins_seconds(tap.loader, tap.batches, args.batch_size))
        tap.batches.clear()
        marks["resume"].append(time.perf_counter())

    config = make_config(
        model=name,
        pretrained=False,
        size=size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_steps=args.steps,
        workers=workers,
        early_stopping=0,
        device=args.device,
        augment=augment,
        precision=args.precision,
        compile=args.compile,
        cache=not args.no_cache,
        cache_dir=str(out / "cache"),
    )
    with tap_training(args.bare_steps) as taps:
        started = time.perf_counter()
        trainer.train(data, out / "run", config, on_epoch=on_epoch, on_cache=on_cache)
        finished = time.perf_counter()
    ends, resumes = marks["epoch_end"], marks["resume"]
    images = [sum(tap.sizes[: args.steps]) for tap in taps]
    epoch_s = [ends[i] - resumes[i - 1] for i in range(1, len(ends))]  # epoch 2 on: steps, validation, writes
    train_rate = [images[i] / epoch_s[i - 1] for i in range(1, len(ends))]
    ratios = [train_rate[i - 1] / marks["bare"][i] for i in range(1, len(ends))]
    step_s = statistics.median(epoch_s) / args.steps
    whole = finished - started - sum(r - e for r, e in zip(resumes, ends))  # train alone, start-up included
    return {
        "model": name,
        "size": size,
        "workers": "auto" if workers is None else workers,
        "augment": augment,
        "batch": sum(images) / len(images) / args.steps,
        "bare_rate": statistics.median(marks["bare"]),
        "train_rate": statistics.median(train_rate),
        "step_s": step_s,
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "twins_share": statistics.median(marks["twins"]) / step_s,
        "cache_s": marks.get("cache", (0.0, 0))[0],
        "whole_ratio": sum(images) / statistics.median(marks["bare"]) / whole,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="backbone (repeat for several; default mobilenetv3_small)")
    parser.add_argument("--paper-models", action="store_true", help="the four paper backbones")
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="input side (default 224; 0: each backbone's own; --paper-models: their own)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--bare-steps", type=int, default=10, help="bare steps measured after each epoch, on the epoch's first batches"
    )
    parser.add_argument(
        "--workers", type=int, action="append", help="data-loading processes (repeat for several; default: train's)"
    )
    parser.add_argument("--augment", choices=("on", "off", "both"), default="both", help="train's augmentation")
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
    augments = {"on": [True], "off": [False], "both": [True, False]}[args.augment]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        clips = make_demo_dataset(tmp / "clips", clips_per_class=args.clips, seconds=4, fps=10)
        data = tmp / "data"
        prepare(
            clips,
            data,
            PrepareConfig("folder", sampler=FrameSampler("uniform", 40), size=crop_px, workers=os.cpu_count() or 1),
        )
        cpu = next(
            (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
            platform.processor(),
        )
        gpu = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "none"
        print(
            f"machine: {os.cpu_count()} cores, {cpu}; GPU: {gpu}; torch {torch.__version__}; "
            f"data: {2 * args.clips} clips -> crops at {crop_px} px in {time.perf_counter() - started:.0f} s"
        )
        print(
            f"default preset (self-blended twins), batch {args.batch_size} drawn crops, {args.epochs} epochs x "
            f"{args.steps} steps, bare step measured on each epoch's first {args.bare_steps} batches; precision "
            f"{args.precision}; crops: {'PNG decoding' if args.no_cache else 'crop cache'}"
            f"{'; compiled' if args.compile else ''}\n",
            flush=True,
        )
        print(
            "| model | px | workers | augmentation | images/step (twins incl.) | images/s bare | images/s train | "
            "s/step train | ratio, epoch 2+ (each epoch) | twins' share of a step, in process | whole run: ratio |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
        for name in models:
            for workers in args.workers or [None]:
                for augment in augments:
                    r = measure(name, data, tmp / f"{name}-{workers}-{augment}", args, workers, augment)
                    print(
                        f"| {name} | {r['size']} | {r['workers']} | {'on' if augment else 'off'} | {r['batch']:.1f} | "
                        f"{r['bare_rate']:.1f} | {r['train_rate']:.1f} | {r['step_s']:.3f} | "
                        f"**{r['ratio']:.2f}** ({', '.join(f'{x:.2f}' for x in r['ratios'])}) | "
                        f"{r['twins_share']:.0%} | {r['whole_ratio']:.2f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()

"""How close ``unmask train`` comes to the bare training step, on one device, in one run.

1. bare step: forward, loss, backward and Adam step on a batch already in memory, repeated;
2. ``train`` end to end: the same model and batch size reading the crops from disk through the
   data loader (PNG decoding, preprocessing, augmentation in worker processes), with validation,
   metrics, TensorBoard, checkpoints and the final calibration included.

The ratio of (2)'s training throughput to (1)'s is the share of time that is real work; the goal
is >= 0.9.

    python benchmarks/train_speed.py                                   # mobilenetv3_small, 224 px, CPU
    python benchmarks/train_speed.py --model efficientnetv2_s --device cuda --batch-size 64
    python benchmarks/train_speed.py --paper-models --device cuda     # the four paper backbones
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from unmask.data.prepare import PrepareConfig, prepare
from unmask.demo import make_demo_dataset
from unmask.models import create_model
from unmask.models.registry import PAPER_BACKBONES
from unmask.training.config import make_config
from unmask.training.train import train
from unmask.video import FrameSampler


def bare_steps(model_name: str, size: int, batch: int, steps: int, device: torch.device) -> float:
    """Seconds per optimiser step on an in-memory batch (after 2 warm-up steps)."""
    torch.manual_seed(0)
    model = create_model(model_name).to(device).train()
    amp = device.type == "cuda"
    if amp:
        model = model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 1.0], device=device))
    x = torch.randn(batch, 3, size, size, device=device)
    if amp:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device)
    for i in range(steps + 2):
        if i == 2:
            if amp:
                torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(model(x).float(), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        loss.item()
    if amp:
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv3_small")
    parser.add_argument("--paper-models", action="store_true", help="measure the four paper backbones")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per epoch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="data-loading processes (default: train's)")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    models = PAPER_BACKBONES if args.paper_models else (args.model,)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = make_demo_dataset(tmp / "clips", clips_per_class=16, seconds=4, fps=10)
        data = tmp / "data"
        prepare(clips, data, PrepareConfig("folder", sampler=FrameSampler("uniform", 40), size_px=args.size,
                                           workers=os.cpu_count() or 1))
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                   platform.processor())
        gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
        print(f"machine: {os.cpu_count()} cores, {cpu}; GPU: {gpu}; torch {torch.__version__}")
        print(f"batch {args.batch_size}, {args.size} px, {args.epochs} epochs x {args.steps} steps, "
              f"loader workers: {'auto' if args.workers is None else args.workers}, "
              f"augmentation: {'off' if args.no_augment else 'on'}\n")
        print("| model | bare step (s) | `train` s per step, end to end | images/s bare | images/s train | ratio |")
        print("|---|---|---|---|---|---|")
        for name in models:
            bare = bare_steps(name, args.size, args.batch_size, args.steps, device)
            config = make_config(model=name, pretrained=False, size_px=args.size, batch_size=args.batch_size,
                                 epochs=args.epochs, max_steps_per_epoch=args.steps, workers=args.workers,
                                 early_stopping=0, device=args.device, augment=not args.no_augment)
            started = time.perf_counter()
            train(data, tmp / f"run-{name}", config)
            whole = (time.perf_counter() - started) / (args.epochs * args.steps)
            print(f"| {name} | {bare:.3f} | {whole:.3f} | {args.batch_size / bare:.1f} | "
                  f"{args.batch_size / whole:.1f} | {bare / whole:.2f} |")


if __name__ == "__main__":
    main()

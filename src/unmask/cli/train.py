"""``unmask train``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from tqdm import tqdm

from unmask.cli import app


@app.command("train")
def train_command(
    data_dir: Path = typer.Argument(..., help="Output folder of `unmask prepare` (holds manifest.parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for checkpoints and logs."),
    model: Optional[str] = typer.Option(None, help="Backbone: xception, inception_resnet_v2, efficientnetv2_s, efficientnetv2_m, mobilenetv3_small."),
    preset: str = typer.Option("default", help="default (honest video split, augmentation) or paper (the paper exactly)."),
    protocol: Optional[str] = typer.Option(None, help="Split to train on: paper, video or official."),
    size: Optional[int] = typer.Option(None, help="Input side in pixels (0: the backbone's own)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs in all; with --resume, trains a finished or interrupted run on to this many."),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate."),
    class_weights: Optional[str] = typer.Option(None, help="balanced, none or effective."),
    beta: Optional[float] = typer.Option(None, help="Beta of --class-weights effective (default 1 - 1/N, N training crops)."),
    loss: Optional[str] = typer.Option(None, help="ce or focal."),
    batch_sampler: Optional[str] = typer.Option(None, help="How batches are drawn: shuffle, or balanced (equal class odds; then class weights are none)."),
    label_level: Optional[str] = typer.Option(None, help="video: every crop; face: drop the other faces of fake videos with several faces."),
    synthesize: Optional[str] = typer.Option(None, help="sbi: also train on self-blended fakes made from the real crops (works with real videos only); none: the data's fakes only."),
    sbi_ratio: Optional[float] = typer.Option(None, help="With --synthesize sbi: probability that a real crop also appears as its self-blended fake [default: 1.0]."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Flip, jitter, JPEG, blur."),
    select_metric: Optional[str] = typer.Option(None, help="Validation metric that picks the checkpoint: val_acc, val_auc, val_loss."),
    early_stopping: Optional[int] = typer.Option(None, help="Stop after N epochs without progress (0: never)."),
    pretrained: Optional[bool] = typer.Option(None, "--pretrained/--no-pretrained", help="Start from ImageNet weights (needs internet once) or from scratch."),
    weights: Optional[Path] = typer.Option(None, help="Local file of the backbone's ImageNet weights (timm format)."),
    cost_missed_fake: float = typer.Option(1.0, help="Cost of calling a fake real."),
    cost_false_alarm: float = typer.Option(1.0, help="Cost of calling a real fake."),
    seed: Optional[int] = typer.Option(None),
    workers: Optional[int] = typer.Option(None, help="Data-loading worker processes."),
    max_steps: Optional[int] = typer.Option(None, help="At most N steps per epoch (quick trials)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: this rank's GPU, else CPU)."),
    precision: Optional[str] = typer.Option(None, help="auto (bf16 or fp16 autocast on a GPU, fp32 on a CPU), fp32, bf16, fp16."),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (slow start; for long GPU runs)."),
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help="Read crops from the crop cache (built on first use) or decode the PNGs each epoch."),
    cache_dir: Optional[Path] = typer.Option(None, help="Where the crop cache lives (default: DATA_DIR/cache)."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last completed epoch (with --epochs N: train on to N)."),
):
    """Train a cost-sensitive deepfake detector on prepared face crops.

    Example: unmask train runs/ffpp --model xception --preset paper --out runs/xception-paper
    Under torchrun: torchrun --nproc_per_node=4 -m unmask train runs/ffpp --model efficientnetv2_s --out runs/effv2
    """
    from unmask.training.calibration import Costs  # here, not at the top: torch takes seconds to import
    from unmask.training.config import make_config
    from unmask.training.trainer import train

    config = make_config(
        preset, model=model, protocol=protocol, size=size, epochs=epochs, batch_size=batch_size, lr=lr,
        class_weights=class_weights, beta=beta, loss=loss, batch_sampler=batch_sampler, label_level=label_level, synthesize=synthesize, sbi_ratio=sbi_ratio, augment=augment, select_metric=select_metric,
        early_stopping=early_stopping, pretrained=pretrained, weights=str(weights) if weights else None,
        costs=Costs(cost_missed_fake, cost_false_alarm), seed=seed, workers=workers, max_steps=max_steps,
        device=device, precision=precision, compile=compile, cache=cache, cache_dir=str(cache_dir) if cache_dir else None,
    )
    bar = None
    cache_bar = None

    def on_cache_progress(done, total):
        nonlocal cache_bar
        if cache_bar is None:
            cache_bar = tqdm(total=total, desc="crop cache", unit="crop", disable=None, leave=False)
        cache_bar.update(done - cache_bar.n)

    def on_cache(crop_cache):
        if cache_bar is not None:
            cache_bar.close()
        how = f"built in {crop_cache.built_s:.0f} s" if crop_cache.built_s else "reused"
        typer.echo(f"crop cache: {crop_cache.path} ({crop_cache.nbytes / 1e9:.2f} GB, {how})", err=True)

    def on_step(epoch, step, steps):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=steps, desc=f"epoch {epoch}", unit="batch", disable=None, leave=False)
        bar.update(step - bar.n)

    def on_epoch(row):
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        typer.echo(f"epoch {row['epoch']}: loss {row['train_loss']:.4f}  val acc {row['val_acc']:.4f}  "
                   f"val auc {row['val_auc']:.4f}  val f1 {row['val_f1']:.4f}  ({row['seconds']:.0f} s)")

    result = train(data_dir, out, config, resume=resume, epochs=epochs if resume else None, on_epoch=on_epoch,
                   on_step=on_step, on_cache=on_cache, on_cache_progress=on_cache_progress)
    typer.echo(f"best epoch {result.best_epoch} ({config.select_metric} {result.best_metric:.4f}); calibration: "
               f"temperature {result.temperature:.3f}, bias {result.bias:+.3f}; threshold {result.threshold:.3f}")
    typer.echo(f"checkpoint: {result.checkpoint}")

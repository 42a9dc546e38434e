"""``unmask train``."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from unmask.cli import app, on_interrupt
from unmask.cli._help import complete_from, deprecated_option, with_code_help


def _model_names():
    from unmask.models.registry import BACKBONES

    return list(BACKBONES)


def _describe(value) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def preset_notes() -> dict:
    """Each option's choices and the value each preset gives it, read from the training code."""
    import dataclasses

    from unmask.data.splits import PROTOCOLS
    from unmask.models.registry import PAPER_BACKBONES
    from unmask.training import config as cfg
    from unmask.training.cost import CLASS_WEIGHTS, LOSSES
    from unmask.training.sbi import SYNTHESIZERS

    defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(cfg.TrainConfig)}
    choices = {"model": _model_names(), "protocol": PROTOCOLS, "class_weights": CLASS_WEIGHTS, "loss": LOSSES,
               "batch_sampler": cfg.SAMPLERS, "label_level": cfg.LABEL_LEVELS, "select_metric": cfg.SELECT_METRICS,
               "precision": cfg.PRECISIONS, "preset": list(cfg.PRESETS), "synthesize": SYNTHESIZERS}
    notes = {}
    for option in ("model", "protocol", "size", "epochs", "batch_size", "lr", "class_weights", "loss", "batch_sampler",
                   "label_level", "synthesize", "sbi_ratio", "real_only", "augment", "select_metric", "early_stopping",
                   "pretrained", "seed", "precision",
                   "compile", "cache", "cost_missed_fake", "cost_false_alarm"):
        if option.startswith("cost_"):
            values = {p: getattr(defaults["costs"], option.removeprefix("cost_")) for p in cfg.PRESETS}
        elif option in defaults:  # the settings carry the options' names
            values = {p: cfg.PRESETS[p].get(option, defaults[option]) for p in cfg.PRESETS}
        else:
            continue
        if option == "model":
            note = f"default: {values['default']}; paper preset: one of {', '.join(PAPER_BACKBONES)}, required"
        elif len(set(map(_describe, values.values()))) == 1:
            note = f"default: {_describe(values['default'])}, every preset"
        else:
            note = "; ".join(f"{'default' if p == 'default' else p + ' preset'}: {_describe(v)}" for p, v in values.items())
        notes[option] = (choices.get(option), note)
    notes["preset"] = (choices["preset"], None)
    return notes


@app.command("train", cls=with_code_help(preset_notes))
def train_command(
    data_dir: Optional[Path] = typer.Argument(None, help="Output folder of `unmask prepare` (holds manifest.parquet).",
                                              show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder for checkpoints and logs (required).",
                                       show_default=False),
    config_file: Optional[Path] = typer.Option(
        None, "--config", help="Settings from a YAML or JSON file (a run's own config.json too); flags override it."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved settings as JSON and exit."),
    preset: Optional[str] = typer.Option(None, help="default: honest video split, augmentation; paper: the paper exactly.",
                                         autocompletion=complete_from(lambda: ("default", "paper"))),
    model: Optional[str] = typer.Option(None, help="Backbone.", autocompletion=complete_from(_model_names)),
    protocol: Optional[str] = typer.Option(None, help="Split to train and validate on."),
    size: Optional[int] = typer.Option(None, help="Input side in pixels (0: the backbone's own)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs in all; with --resume, trains a finished or interrupted run on to this many."),
    batch_size: Optional[int] = typer.Option(None, help="Crops per optimiser step."),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate."),
    class_weights: Optional[str] = typer.Option(None, help="Loss weights of the classes."),
    beta: Optional[float] = typer.Option(None, help="Beta of --class-weights effective (default 1 - 1/N, N training crops)."),
    loss: Optional[str] = typer.Option(None, help="Cross-entropy or focal loss."),
    batch_sampler: Optional[str] = typer.Option(
        None, help="How batches are drawn: shuffle, or balanced (equal class odds; then class weights are none)."),
    old_sampler: Optional[str] = typer.Option(None, "--sampler", hidden=True),  # the old name of --batch-sampler
    label_level: Optional[str] = typer.Option(None, help="video: every crop; face: drop the other faces of fake videos with several faces."),
    synthesize: Optional[str] = typer.Option(None, help="sbi: also train on self-blended fakes made from the real crops (works with real videos alone); none: the data's own fakes only."),
    sbi_ratio: Optional[float] = typer.Option(None, help="With --synthesize sbi: the probability that a real crop also appears as its self-blended fake."),
    real_only: Optional[bool] = typer.Option(None, "--real-only/--with-fakes", help="Train on the real videos alone (with --synthesize sbi, its fakes are the only ones; validation keeps the data's fakes)."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Flip, jitter, JPEG, blur."),
    select_metric: Optional[str] = typer.Option(None, help="Validation metric that picks the checkpoint."),
    early_stopping: Optional[int] = typer.Option(None, help="Stop after N epochs without progress (0: never)."),
    pretrained: Optional[bool] = typer.Option(None, "--pretrained/--no-pretrained", help="Start from ImageNet weights (needs internet once) or from scratch."),
    weights: Optional[Path] = typer.Option(None, help="Local file of the backbone's ImageNet weights (timm format)."),
    cost_missed_fake: Optional[float] = typer.Option(None, help="Cost of calling a fake real."),
    cost_false_alarm: Optional[float] = typer.Option(None, help="Cost of calling a real fake."),
    seed: Optional[int] = typer.Option(None, help="Seed of the data order, augmentation and initial weights."),
    workers: Optional[int] = typer.Option(None, help="Data-loading worker processes (default: one per core up to 8 on a GPU, none on a CPU)."),
    max_steps: Optional[int] = typer.Option(None, help="At most N steps per epoch (quick trials)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: this rank's GPU, else CPU)."),
    precision: Optional[str] = typer.Option(None, help="auto: bf16 or fp16 autocast on a GPU, fp32 on a CPU."),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (slow start; for long GPU runs)."),
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help="Read crops from the crop cache (built on first use) or decode the PNGs each epoch."),
    cache_dir: Optional[Path] = typer.Option(None, help="Where the crop cache lives (default: DATA_DIR/cache)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last completed epoch (with --epochs N: train on to N)."),
):
    """Train a cost-sensitive deepfake detector on prepared face crops.

    \b
    Example: unmask train runs/ffpp --model xception --preset paper --out runs/xception-paper
    Under torchrun: torchrun --nproc_per_node=4 -m unmask train runs/ffpp --model efficientnetv2_s --out runs/effv2
    """
    if not print_config and (data_dir is None or out is None):
        raise typer.BadParameter("train needs DATA_DIR and --out (only --print-config runs without them)")
    from unmask.decision.calibration import Costs  # here, not at the top: torch takes seconds to import
    from unmask.training.config import make_config, read_config_file

    if old_sampler is not None:
        deprecated_option("--sampler", "--batch-sampler")
        batch_sampler = batch_sampler or old_sampler
    settings = read_config_file(config_file) if config_file else {}
    preset = preset or settings.pop("preset", None) or "default"
    settings.pop("preset", None)
    costs = settings.get("costs")
    if cost_missed_fake is not None or cost_false_alarm is not None:
        base = costs or Costs()
        costs = Costs(base.missed_fake if cost_missed_fake is None else cost_missed_fake,
                      base.false_alarm if cost_false_alarm is None else cost_false_alarm)
    flags = dict(
        model=model, protocol=protocol, size=size, epochs=epochs, batch_size=batch_size, lr=lr,
        class_weights=class_weights, beta=beta, loss=loss, batch_sampler=batch_sampler, label_level=label_level,
        synthesize=synthesize, sbi_ratio=sbi_ratio, real_only=real_only, augment=augment, select_metric=select_metric, early_stopping=early_stopping, pretrained=pretrained,
        weights=str(weights) if weights else None, costs=costs, seed=seed, workers=workers,
        max_steps=max_steps, device=device, precision=precision, compile=compile, cache=cache,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    config = make_config(preset, **{**settings, **{k: v for k, v in flags.items() if v is not None}})
    if print_config:
        import dataclasses

        typer.echo(json.dumps(dataclasses.asdict(config), indent=1))
        raise typer.Exit()
    _train(data_dir, out, config, resume=resume, epochs=epochs)


def resume_command() -> str:
    """The command line that continues this run (the same one is refused: the run exists)."""
    args = sys.argv[1:] + ([] if "--resume" in sys.argv[1:] else ["--resume"])
    if os.environ.get("LOCAL_WORLD_SIZE"):  # under torchrun: start it the same way
        return f"torchrun --nproc_per_node={os.environ['LOCAL_WORLD_SIZE']} -m unmask {shlex.join(args)}"
    return shlex.join(["unmask", *args])


def _train(data_dir: Path, out: Path, config, *, resume: bool, epochs: int | None) -> None:
    from unmask.cli._progress import ProgressBars, is_main_process
    from unmask.training.trainer import train

    main = is_main_process()

    def on_cache(crop_cache):
        how = f"built in {crop_cache.built_s:.0f} s" if crop_cache.built_s else "reused"
        bars.close("crop cache")
        typer.echo(f"crop cache: {crop_cache.path} ({crop_cache.nbytes / 1e9:.2f} GB, {how})", err=True)

    def on_epoch(row):
        bars.write(f"epoch {row['epoch']}: loss {row['train_loss']:.4f}  val acc {row['val_acc']:.4f}  "
                   f"val auc {row['val_auc']:.4f}  val f1 {row['val_f1']:.4f}  ({row['seconds']:.0f} s)")

    bars = ProgressBars()
    on_interrupt(f"interrupted: the epochs finished are kept in {out}; go on with: {resume_command()}")
    try:
        result = train(data_dir, out, config, resume=resume, epochs=epochs if resume else None, on_epoch=on_epoch,
                       on_cache=on_cache, progress=bars)
    finally:
        bars.close()
    if not main:
        return
    typer.echo(f"best epoch {result.best_epoch} ({config.select_metric} {result.best_metric:.4f}); calibration: "
               f"temperature {result.temperature:.3f}, bias {result.bias:+.3f}; threshold {result.threshold:.3f}")
    typer.echo(f"checkpoint: {result.checkpoint}")
    typer.echo(f"also written in {result.run_dir}: metrics.csv (per epoch), config.json (the settings: --config takes it "
               "back), MODEL_CARD.md, model_card.json and reliability.png (the model card), tensorboard/, "
               "best.safetensors, last.safetensors")
    typer.echo(f"next: unmask evaluate {shlex.quote(str(out))} {shlex.quote(str(data_dir))} "
               f"--out {shlex.quote(str(out / 'eval-test'))}")
    typer.echo(f"      tensorboard --logdir {shlex.quote(str(out / 'tensorboard'))}   (the training curves)")

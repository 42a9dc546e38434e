"""``unmask train``."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from unmask.cli import app, on_interrupt
from unmask.cli._help import complete_from
from unmask.cli._settings import settings_command, settings_help, settings_options


def _describe(value) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def preset_notes() -> dict:
    """Each option's choices and the value each preset gives it, read from the training code."""
    from unmask.models.registry import PAPER_BACKBONES
    from unmask.settings import default_of
    from unmask.training.config import PRESETS, TrainConfig

    defaults = {f.name: default_of(f) for f in dataclasses.fields(TrainConfig)}
    values = {
        name: {p: PRESETS[p].get(name, default) for p in PRESETS}
        for name, default in defaults.items()
        if default is not None and name != "costs"
    }
    for part in ("missed_fake", "false_alarm"):
        values[f"cost_{part}"] = {p: getattr(PRESETS[p].get("costs", defaults["costs"]), part) for p in PRESETS}
    notes = {}
    for option, by_preset in values.items():
        if option == "model":
            notes[option] = (
                f"default: {by_preset['default']}; paper preset: one of {', '.join(PAPER_BACKBONES)}, required"
            )
        elif len(set(map(_describe, by_preset.values()))) == 1:
            notes[option] = f"default: {_describe(by_preset['default'])}, every preset"
        else:
            notes[option] = "; ".join(
                f"{'default' if p == 'default' else p + ' preset'}: {_describe(v)}" for p, v in by_preset.items()
            )
    help_notes = settings_help(TrainConfig, notes)
    help_notes.update({k: (None, notes[k]) for k in ("cost_missed_fake", "cost_false_alarm")})
    help_notes["preset"] = (list(PRESETS), None)
    return help_notes


@app.command("train", cls=settings_command(preset_notes))
@settings_options(
    "unmask.training.config:TrainConfig",
    after="preset",
    unset=True,
    fields_as={"costs": ("cost_missed_fake", "cost_false_alarm")},
)
def train_command(
    data_dir: Optional[Path] = typer.Argument(
        None, help="Output folder of `unmask prepare` (holds manifest.parquet).", show_default=False
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Run folder for checkpoints and logs (required).", show_default=False
    ),
    config_file: Optional[Path] = typer.Option(
        None, "--config", help="Settings from a YAML or JSON file (a run's own config.json too); flags override it."
    ),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved settings as JSON and exit."),
    preset: Optional[str] = typer.Option(
        None,
        help="default: honest video split, augmentation; paper: the paper exactly.",
        autocompletion=complete_from(lambda: ("default", "paper")),
    ),
    cost_missed_fake: Optional[float] = typer.Option(None, help="Cost of calling a fake real."),
    cost_false_alarm: Optional[float] = typer.Option(None, help="Cost of calling a real fake."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the run in --out from its last completed epoch (with --epochs N: train on to N).",
    ),
    **settings,
):
    """Train a cost-sensitive deepfake detector on prepared face crops.

    \b
    Example: unmask train runs/ffpp --model xception --preset paper --out runs/xception-paper
    Under torchrun: torchrun --nproc_per_node=4 -m unmask train runs/ffpp --model efficientnetv2_s --out runs/effv2
    """
    if not print_config and (data_dir is None or out is None):
        raise typer.BadParameter("train needs DATA_DIR and --out (only --print-config runs without them)")
    from unmask.decision.calibration import Costs
    from unmask.training.config import make_config, read_config_file

    from_file = read_config_file(config_file) if config_file else {}
    preset = preset or from_file.pop("preset", None) or "default"
    from_file.pop("preset", None)
    if cost_missed_fake is not None or cost_false_alarm is not None:
        base = from_file.get("costs") or Costs()
        settings["costs"] = Costs(
            base.missed_fake if cost_missed_fake is None else cost_missed_fake,
            base.false_alarm if cost_false_alarm is None else cost_false_alarm,
        )
    config = make_config(preset, **{**from_file, **settings})
    if print_config:
        typer.echo(json.dumps(dataclasses.asdict(config), indent=1))
        raise typer.Exit()
    _train(data_dir, out, config, resume=resume, epochs=settings.get("epochs"))


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
        bars.write(
            f"epoch {row['epoch']}: loss {row['train_loss']:.4f}  val acc {row['val_acc']:.4f}  "
            f"val auc {row['val_auc']:.4f}  val f1 {row['val_f1']:.4f}  ({row['seconds']:.0f} s)"
        )

    bars = ProgressBars()
    on_interrupt(f"interrupted: the epochs finished are kept in {out}; go on with: {resume_command()}")
    try:
        result = train(
            data_dir,
            out,
            config,
            resume=resume,
            epochs=epochs if resume else None,
            on_epoch=on_epoch,
            on_cache=on_cache,
            progress=bars,
        )
    finally:
        bars.close()
    if not main:
        return
    typer.echo(
        f"best epoch {result.best_epoch} ({config.select_metric} {result.best_metric:.4f}); calibration: "
        f"temperature {result.temperature:.3f}, bias {result.bias:+.3f}; threshold {result.threshold:.3f}"
    )
    typer.echo(f"checkpoint: {result.checkpoint}")
    typer.echo(
        f"also written in {result.run_dir}: metrics.csv (per epoch), config.json (the settings: --config takes it "
        "back), MODEL_CARD.md, model_card.json and reliability.png (the model card), tensorboard/, "
        "best.safetensors, last.safetensors"
    )
    typer.echo(
        f"next: unmask evaluate {shlex.quote(str(out))} {shlex.quote(str(data_dir))} "
        f"--out {shlex.quote(str(out / 'eval-test'))}"
    )
    typer.echo(f"      tensorboard --logdir {shlex.quote(str(out / 'tensorboard'))}   (the training curves)")

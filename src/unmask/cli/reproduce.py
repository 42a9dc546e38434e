"""``unmask reproduce``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from tqdm import tqdm

from unmask.cli import app
from unmask.errors import UnmaskError


def parse_weights(items: list[str]) -> dict[str, Path]:
    """``["xception=x.pth", ...]`` -> ``{"xception": Path("x.pth"), ...}``."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UnmaskError(f"--weights must look like MODEL=FILE (e.g. xception=weights/xception.pth), not {item!r}")
        out[name.strip()] = Path(path)
    return out


@app.command("reproduce")
def reproduce_command(
    root: Path = typer.Argument(..., help="Celeb-DF-v2 or FaceForensics++ folder."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="celebdf or ffpp."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the crops, runs, evaluations and results.md (a rerun goes on)."
    ),
    models: Optional[str] = typer.Option(
        None,
        help="Comma-separated backbones (default the paper's four: xception,inception_resnet_v2,efficientnetv2_s,efficientnetv2_m).",
    ),
    presets: str = typer.Option("paper,default", help="Training presets to compare, comma-separated."),
    weights_dir: Optional[Path] = typer.Option(
        None, help="Folder of ImageNet weights named <model>.safetensors (or .pth, .bin)."
    ),
    weights: list[str] = typer.Option([], help="MODEL=FILE: one backbone's ImageNet weights (repeatable)."),
    pretrained: Optional[bool] = typer.Option(
        None, "--pretrained/--no-pretrained", help="Start from ImageNet weights (the presets' choice) or from scratch."
    ),
    epochs: Optional[int] = typer.Option(None, help="Epochs of every run (default: each preset's)."),
    size: Optional[int] = typer.Option(None, help="Input side in pixels for every run (default: each preset's)."),
    batch_size: Optional[int] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None, help="At most N steps per epoch (quick trials)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda ... (default: a GPU if there is one)."),
    num_frames: int = typer.Option(32, help="Frames per video to prepare."),
    detector: Optional[str] = typer.Option(None, help="Face detector: mtcnn, facenet or haar."),
    compression: str = typer.Option("c23", help="FF++ only: raw, c23 or c40."),
    workers: int = typer.Option(1, help="Prepare's worker processes."),
    bootstrap: int = typer.Option(1000, help="Resamples over videos for the 95% intervals."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write each evaluation's report.html."),
    report_examples: int = typer.Option(2, help="Heatmap examples per confusion-matrix cell in each report."),
):
    """Reproduce the paper: prepare, train each backbone with the paper preset and the default one,
    evaluate, and write the paper's table beside the honest one (results.md, results.html).

    Example: unmask reproduce /data/Celeb-DF-v2 --dataset celebdf --out runs/repro-celebdf --weights-dir weights/
    """
    from unmask.cli._progress import ProgressBars
    from unmask.evaluation.table import to_markdown
    from unmask.recipes.reproduce import reproduce

    bars = ProgressBars()  # prepare's progress, as `unmask prepare` shows it
    step_bar = None

    def on_step(name, epoch, step, steps):
        nonlocal step_bar
        if step_bar is None:
            step_bar = tqdm(total=steps, desc=f"{name} epoch {epoch}", unit="batch", disable=None, leave=False)
        step_bar.update(step - step_bar.n)

    def on_epoch(name, row):
        nonlocal step_bar
        if step_bar is not None:
            step_bar.close()
            step_bar = None
        typer.echo(
            f"  {name} epoch {row['epoch']}: loss {row['train_loss']:.4f}  val acc {row['val_acc']:.4f}  "
            f"val auc {row['val_auc']:.4f}  ({row['seconds']:.0f} s)"
        )

    def progress(line):
        bars.close()
        typer.echo(line)

    try:
        result = reproduce(
            root,
            out,
            dataset=dataset,
            models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
            presets=[p.strip() for p in presets.split(",") if p.strip()],
            num_frames=num_frames,
            detector=detector,
            compression=compression,
            prepare_workers=workers,
            epochs=epochs,
            size=size,
            batch_size=batch_size,
            max_steps=max_steps,
            pretrained=pretrained,
            weights=parse_weights(weights),
            weights_dir=weights_dir,
            device=device,
            bootstrap=bootstrap,
            report=report,
            report_examples=report_examples,
            progress=progress,
            on_prepare=bars,
            on_epoch=on_epoch,
            on_step=on_step,
        )
    finally:
        bars.close()
        if step_bar is not None:
            step_bar.close()
    typer.echo(to_markdown(result.table))
    typer.echo(f"written: {result.markdown}, {result.html}")

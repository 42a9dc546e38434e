"""``unmask evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unmask.cli import app


@app.command("evaluate")
def evaluate_command(
    run_dir: Path = typer.Argument(..., help="Run folder of `unmask train` (holds model.safetensors)."),
    data_dir: Path = typer.Argument(..., help="Output folder of `unmask prepare` (this or another dataset)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for metrics.json, scores and report.html."),
    split: str = typer.Option("test", help="train, val, test, or all (every crop: for a cross-dataset test)."),
    protocol: Optional[str] = typer.Option(None, help="paper, video or official (default: the run's own)."),
    aggregation: str = typer.Option("mean", help="Video score from frame scores: mean, median, confident, track."),
    bootstrap: int = typer.Option(1000, help="Resamples over videos for the 95% intervals (0: none)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda ... (default: a GPU if there is one)."),
    batch_size: int = typer.Option(64),
    prior_fake: Optional[float] = typer.Option(
        None, help="Share of fakes expected in use; shifts the log-odds: logit(p') = logit(p) + logit(prior) - logit(validation share)."),
):
    """Judge a trained detector per frame and per video, and write a report.

    \b
    Example: unmask evaluate runs/xception-paper runs/ffpp --out runs/xception-paper/eval-test
    """
    from unmask.evaluation.evaluate import evaluate, format_metrics

    result = evaluate(run_dir, data_dir, out, split=split, protocol=protocol, aggregation=aggregation,
                      device=device, batch_size=batch_size, bootstrap=bootstrap, report=report,
                      prior_fake=prior_fake)
    typer.echo(format_metrics(result.metrics))
    typer.echo(f"written: {out}/metrics.json" + (f", {out}/report.html" if report else ""))

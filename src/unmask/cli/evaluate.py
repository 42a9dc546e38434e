"""``unmask evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unmask.cli import app
from unmask.cli._help import with_code_help


def evaluate_choices() -> dict:
    """Choices of ``evaluate``'s options, read from the library when --help is shown."""
    from unmask.data.splits import PROTOCOLS
    from unmask.decision.aggregate import AGGREGATIONS
    from unmask.evaluation.evaluator import SPLITS

    return {"split": (SPLITS, None), "protocol": (PROTOCOLS, None), "aggregation": (AGGREGATIONS, None)}


@app.command("evaluate", cls=with_code_help(evaluate_choices))
def evaluate_command(
    run_dir: Path = typer.Argument(..., help="Run folder of `unmask train` (holds model.safetensors)."),
    data_dir: Path = typer.Argument(..., help="Output folder of `unmask prepare` (this or another dataset)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for metrics.json, scores and report.html."),
    split: str = typer.Option("test", help="Which split; all: every crop (for a cross-dataset test)."),
    protocol: Optional[str] = typer.Option(None, help="Split protocol (default: the run's own)."),
    aggregation: str = typer.Option("mean", help="How frame scores make a video score."),
    bootstrap: int = typer.Option(1000, help="Resamples over videos for the 95% intervals (0: none)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda ... (default: a GPU if there is one)."),
    batch_size: int = typer.Option(64),
    prior_fake: Optional[float] = typer.Option(
        None,
        help="Share of fakes expected in use; shifts the log-odds: logit(p') = logit(p) + logit(prior) - logit(validation share).",
    ),
):
    """Judge a trained detector per frame and per video, and write a report.

    \b
    Example: unmask evaluate runs/xception-paper runs/ffpp --out runs/xception-paper/eval-test
    """
    import shlex

    from unmask.cli._progress import ProgressBars
    from unmask.evaluation.evaluator import evaluate, format_metrics

    bars = ProgressBars()
    try:
        result = evaluate(
            run_dir,
            data_dir,
            out,
            split=split,
            protocol=protocol,
            aggregation=aggregation,
            device=device,
            batch_size=batch_size,
            bootstrap=bootstrap,
            report=report,
            prior_fake=prior_fake,
            progress=bars,
        )
    finally:
        bars.close()
    typer.echo(format_metrics(result.metrics))
    typer.echo(f"written: {out}/metrics.json, frame_scores.csv, video_scores.csv" + (", report.html" if report else ""))
    nxt = f"next: open {shlex.quote(str(out / 'report.html'))}; " if report else "next: "
    typer.echo(f"{nxt}unmask table {shlex.quote(str(out))} (the paper's table; give several evaluations to compare)")

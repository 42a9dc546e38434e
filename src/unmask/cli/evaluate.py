"""``unmask evaluate`` and ``unmask table``."""

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

    Example: unmask evaluate runs/xception-paper runs/ffpp --out runs/xception-paper/eval-test
    """
    from unmask.evaluation.evaluate import evaluate, format_metrics

    result = evaluate(run_dir, data_dir, out, split=split, protocol=protocol, aggregation=aggregation,
                      device=device, batch_size=batch_size, bootstrap=bootstrap, report=report,
                      prior_fake=prior_fake)
    typer.echo(format_metrics(result.metrics))
    typer.echo(f"written: {out}/metrics.json" + (f", {out}/report.html" if report else ""))


@app.command("table")
def table_command(
    eval_dirs: list[Path] = typer.Argument(..., help="Output folders of `unmask evaluate`."),
    csv: Optional[Path] = typer.Option(None, help="Also write the table as CSV here."),
    cross: bool = typer.Option(False, "--cross", help="Within- and cross-dataset rows side by side (train data -> test data), with 95% intervals."),
):
    """Print the paper's table (weighted accuracy, precision, recall, F1 at the raw argmax) with AUC,
    cost-decision and video columns.

    Example: unmask table runs/*/eval-test --csv results.csv
    Cross-dataset: unmask table runs/xception/eval-test runs/xception/eval-celebdf --cross
    """
    from unmask.evaluation.table import make_table, to_markdown
    from unmask.utils.atomic import write_atomic

    if cross:
        from unmask.evaluation.cross import cross_table

        table = cross_table(eval_dirs)
    else:
        table = make_table(eval_dirs)
    typer.echo(to_markdown(table))
    if csv:
        with write_atomic(csv, "w") as fh:
            table.to_csv(fh, index=False)

"""``unmask merge``."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from unmask.cli import app
from unmask.cli.prepare import report_prepared


@app.command("merge")
def merge_command(
    shards: list[Path] = typer.Argument(..., help="Output folders of `unmask prepare --shard K/N` runs."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the combined manifest.parquet and failures.csv."),
):
    """Combine the manifests of sharded prepare runs into one, with splits over all videos.

    \b
    Example: unmask merge runs/part1 runs/part2 --out runs/all
    """
    from unmask.data.preparation import FAILURES_NAME, merge_manifests
    from unmask.data.splits import EmptySplitWarning

    with warnings.catch_warnings():  # report_prepared says it with the command to run instead
        warnings.simplefilter("ignore", EmptySplitWarning)
        path = merge_manifests(shards, out)
    report_prepared(path, Path(out) / FAILURES_NAME)

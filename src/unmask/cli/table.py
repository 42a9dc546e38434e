"""``unmask table``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unmask.cli import app


@app.command("table")
def table_command(
    eval_dirs: list[Path] = typer.Argument(..., help="Output folders of `unmask evaluate`."),
    csv: Optional[Path] = typer.Option(
        None, help="Also write the table as CSV here (and the per-method table beside it, NAME.per-method.csv)."
    ),
    cross: bool = typer.Option(
        False,
        "--cross",
        help="Within- and cross-dataset rows side by side (train data -> test data), with 95% intervals.",
    ),
):
    """Print the paper's table (weighted accuracy, precision, recall, F1 at the raw argmax) with AUC,
    cost-decision and video columns.

    \b
    Example: unmask table runs/*/eval-test --csv results.csv
    Cross-dataset: unmask table runs/xception/eval-test runs/xception/eval-celebdf --cross
    """
    from unmask.evaluation.table import METHOD_NOTE, make_method_table, make_table, to_markdown
    from unmask.utils.atomic import write_atomic

    if cross:
        from unmask.evaluation.cross import cross_table

        table = cross_table(eval_dirs)
        typer.echo(to_markdown(table))
        if csv:
            with write_atomic(csv, "w") as fh:
                table.to_csv(fh, index=False)
        return
    table, methods = make_table(eval_dirs), make_method_table(eval_dirs)
    typer.echo(to_markdown(table))
    if not methods.empty:
        typer.echo(f"\nPer method. {METHOD_NOTE}\n")
        typer.echo(to_markdown(methods))
    if csv:
        for path, df in ((csv, table), (csv.with_name(f"{csv.stem}.per-method{csv.suffix}"), methods)):
            with write_atomic(path, "w") as fh:
                df.to_csv(fh, index=False)

"""``unmask table``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unmask.cli import app


@app.command("table")
def table_command(
    eval_dirs: list[Path] = typer.Argument(..., help="Output folders of `unmask evaluate`."),
    csv: Optional[Path] = typer.Option(None, help="Also write the table as CSV here."),
):
    """Print the paper's table (weighted accuracy, precision, recall, F1 at the raw argmax) with AUC,
    cost-decision and video columns.

    \b
    Example: unmask table runs/*/eval-test --csv results.csv
    """
    from unmask.evaluation.table import make_table, to_markdown
    from unmask.utils.atomic import write_atomic

    table = make_table(eval_dirs)
    typer.echo(to_markdown(table))
    if csv:
        with write_atomic(csv, "w") as fh:
            table.to_csv(fh, index=False)

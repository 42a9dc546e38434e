"""``unmask export``."""

from __future__ import annotations

from pathlib import Path

import typer

from unmask.cli import app
from unmask.cli._help import with_code_help


def export_choices() -> dict:
    """The export formats, read from the library when --help is shown."""
    from unmask.predict.export import FORMATS

    return {"format": (FORMATS, None)}


@app.command("export", cls=with_code_help(export_choices))
def export_command(
    run_dir: Path = typer.Argument(..., help="Run folder of `unmask train` (or a checkpoint file)."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Folder for model.onnx and its record (what `unmask predict "
        "--model` takes), or a file to write (NAME.onnx, NAME.pt).",
    ),
    format: str = typer.Option("onnx", "--format", help="The file's format."),
    opset: int = typer.Option(17, help="ONNX operator set (7 to 20 with torch 2.x's exporter)."),
):
    """Export the trained detector to ONNX or TorchScript, checked against the PyTorch model.

    \b
    Exit status: 0 written, 1 a user error (a missing run, a bad --opset or --format, an --out that
    cannot be written, an export that disagrees with the model; nothing written), 2 a usage error
    (an unknown option), 130 interrupted.

    \b
    Example: unmask export runs/effv2s --out exported/ ; unmask predict clip.mp4 --model exported/
    """
    from unmask.predict.export import export_model

    result = export_model(run_dir, out, format=format, opset=opset)
    typer.echo(
        f"written: {result.path} ({result.format}; largest logit difference from PyTorch "
        f"{result.max_abs_diff:.1e}) and {result.metadata_path} (input size, mean/std, calibration, threshold)"
    )

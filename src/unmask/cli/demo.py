"""``unmask demo-clips``: small real/fake face clips for trying unmask without a dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from unmask.cli import app


@app.command("demo-clips")
def demo_clips_command(
    out: Path = typer.Argument(..., help="Folder to write real/ and fake/ into."),
    clips: int = typer.Option(4, help="Clips per class."),
    seconds: float = typer.Option(2.0, help="Length of each clip."),
):
    """Write synthetic face clips (public-domain portraits) in the `folder` layout.

    \b
    Example: unmask demo-clips demo/clips && unmask prepare demo/clips --dataset folder --out demo/faces
    """
    from unmask.demo import make_demo_dataset

    make_demo_dataset(out, clips_per_class=clips, seconds=seconds, overwrite=False)
    typer.echo(f"clips: {out}/real, {out}/fake")

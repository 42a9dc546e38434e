"""``unmask push``."""

from __future__ import annotations

from pathlib import Path

import typer

from unmask.cli import app


@app.command("push")
def push_command(
    run_dir: Path = typer.Argument(..., help="Run folder of `unmask train` (holds model.safetensors)."),
    repo_id: str = typer.Argument(..., metavar="ORG/NAME", help="The Hugging Face Hub repository (made if need be)."),
    private: bool = typer.Option(False, "--private", help="Make a new repository private."),
    evaluation: Path = typer.Option(
        None,
        "--evaluation",
        help="An `unmask evaluate` folder of the run's test split (default: the newest inside the run folder).",
    ),
    out: Path = typer.Option(None, "--out", help="Only write the files that would be pushed into this folder."),
):
    """Share a detector by name: its weights, model card (README.md) and record on the Hugging Face Hub.

    Needs a token with write access (`hf auth login`, or HF_TOKEN). Others then judge with
    --model hf://ORG/NAME (add @REVISION for a branch, tag or commit).

    \b
    Example: unmask push runs/xception my-lab/xception-ffpp && unmask predict clip.mp4 --model hf://my-lab/xception-ffpp
    """
    from unmask.predict.push import check_repo_id, push_run, stage_run

    if out is not None:
        staged = stage_run(run_dir, out, repo_id=check_repo_id(repo_id), evaluation=evaluation)
        typer.echo(f"written, not pushed: {', '.join(p.name for p in staged)} in {out}")
        return
    url = push_run(run_dir, repo_id, private=private, evaluation=evaluation)
    typer.echo(f"pushed: {url}")
    typer.echo(f"next: unmask predict CLIP --model hf://{check_repo_id(repo_id)}")

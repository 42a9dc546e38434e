"""The ``unmask`` command: one sub-command per pipeline stage, each a thin layer over one library call."""

from __future__ import annotations

import logging
import signal
import sys

import typer

from unmask import __version__
from unmask.errors import UnmaskError

app = typer.Typer(
    name="unmask",
    help=(
        "Find deepfaked faces in videos, and show why.\n\n"
        "Example: unmask prepare /data/FaceForensics++ --dataset ffpp --out runs/ffpp-c23"
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"unmask {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what each stage does."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# Importing the command modules registers their commands, in pipeline order (the order of --help).
from unmask.cli import demo as _demo  # noqa: E402,F401,I001
from unmask.cli import prepare as _prepare  # noqa: E402,F401
from unmask.cli import train as _train  # noqa: E402,F401
from unmask.cli import evaluate as _evaluate  # noqa: E402,F401
from unmask.cli import reproduce as _reproduce  # noqa: E402,F401
from unmask.cli import explain as _explain  # noqa: E402,F401
from unmask.cli import predict as _predict  # noqa: E402,F401
from unmask.cli import serve as _serve  # noqa: E402,F401
from unmask.cli import export as _export  # noqa: E402,F401

EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 130


def _usage_line(exc: typer.TyperException) -> str:
    """Click's usage error as one line, with where to get help."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
    return f"error: {exc.format_message()}{where}"


def _terminate(signum, frame):
    raise KeyboardInterrupt  # `kill` (SIGTERM) stops as cleanly as Ctrl-C: finished work kept, workers ended


def main() -> None:
    """Entry point: user errors become one red line and a non-zero exit, never a traceback.

    Exit codes: 0 done, 1 a user error, 2 a usage error (click's convention), 3 some videos
    failed (prepare), 130 interrupted (Ctrl-C or SIGTERM).
    """
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit, or None
    except UnmaskError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(EXIT_USER_ERROR)
    except (KeyboardInterrupt, typer.Abort):
        code = EXIT_INTERRUPTED
    except typer.TyperException as exc:  # usage errors (typer carries its own copy of click's classes)
        typer.secho(_usage_line(exc), fg="red", err=True)
        sys.exit(getattr(exc, "exit_code", EXIT_USER_ERROR))
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into Exit(130)
        typer.secho("interrupted: finished work is kept; run the same command again to go on", fg="yellow", err=True)
    sys.exit(code if isinstance(code, int) else 0)

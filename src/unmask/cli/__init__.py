"""The ``unmask`` command: one sub-command per pipeline stage, each a thin layer over one library call."""

from __future__ import annotations

import logging
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
from unmask.cli import explain as _explain  # noqa: E402,F401
from unmask.cli import predict as _predict  # noqa: E402,F401
from unmask.cli import serve as _serve  # noqa: E402,F401

EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 130


def main() -> None:
    """Entry point: user errors become one red line and a non-zero exit, never a traceback."""
    import click

    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit, or None
    except UnmaskError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except click.exceptions.Abort:
        code = EXIT_INTERRUPTED
    except click.ClickException as exc:  # usage errors: click's own message and exit code
        exc.show()
        sys.exit(exc.exit_code)
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into Exit(130)
        typer.secho("interrupted: finished work is kept; run the same command again to go on", fg="yellow", err=True)
    sys.exit(code if isinstance(code, int) else 0)

"""The ``unmask`` command: one sub-command per pipeline stage, each a thin layer over one library call."""

from __future__ import annotations

import logging
import os
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
    # Plain click help: flags shown as flags, choices as [a|b], defaults beside them, in full width.
    rich_markup_mode=None,
)


def _version(value: bool):
    if value:
        typer.echo(f"unmask {__version__}")
        raise typer.Exit()


class _RankFilter(logging.Filter):
    """Under torchrun only rank 0 reports; the other ranks pass on errors only, marked with their rank."""

    def __init__(self, rank: str):
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        if self.rank == "0":
            return True
        record.msg = f"[rank {self.rank}] {record.msg}"
        return record.levelno >= logging.ERROR


def configure_logging(verbosity: int) -> None:
    """Warnings by default, what each stage does with ``-v``, every step with ``-vv``."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RankFilter(os.environ.get("RANK", "0")))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # other libraries keep quiet; unmask's own loggers say more
    logging.getLogger("unmask").setLevel(level)


_interrupt_hint: list[str] = []


def on_interrupt(hint: str) -> None:
    """Say ``hint`` instead of the general line if the running command is interrupted."""
    _interrupt_hint[:] = [hint]


@app.callback()
def _root(
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        show_default=False,
        help="Say what each stage does (-v), and every step (-vv).",
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    configure_logging(verbose)


# Importing the command modules registers their commands, in pipeline order (the order of --help).
from unmask.cli import demo as _demo  # noqa: E402,F401,I001
from unmask.cli import prepare as _prepare  # noqa: E402,F401
from unmask.cli import merge as _merge  # noqa: E402,F401
from unmask.cli import train as _train  # noqa: E402,F401
from unmask.cli import evaluate as _evaluate  # noqa: E402,F401
from unmask.cli import table as _table  # noqa: E402,F401
from unmask.cli import reproduce as _reproduce  # noqa: E402,F401
from unmask.cli import explain as _explain  # noqa: E402,F401
from unmask.cli import predict as _predict  # noqa: E402,F401
from unmask.cli import serve as _serve  # noqa: E402,F401
from unmask.cli import export as _export  # noqa: E402,F401
from unmask.cli import push as _push  # noqa: E402,F401

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

    Exit codes: 0 done, 1 a user error, 2 a usage error (click's convention), 3 some inputs
    failed (prepare, predict), 130 interrupted (Ctrl-C or SIGTERM; serve too, after its clean shutdown).
    """
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit, or None
    except UnmaskError as exc:
        typer.secho(f"error: {exc.for_cli()}", fg="red", err=True)  # settings named as their flags
        sys.exit(EXIT_USER_ERROR)
    except (KeyboardInterrupt, typer.Abort):
        code = EXIT_INTERRUPTED
    except typer.TyperException as exc:  # usage errors (typer carries its own copy of click's classes)
        typer.secho(_usage_line(exc), fg="red", err=True)
        sys.exit(getattr(exc, "exit_code", EXIT_USER_ERROR))
    if code == EXIT_INTERRUPTED and os.environ.get("RANK", "0") == "0":  # typer turns Ctrl-C into Exit(130)
        hint = (
            _interrupt_hint[0]
            if _interrupt_hint
            else "interrupted: finished work is kept; run the same command again to go on"
        )
        typer.secho(hint, fg="yellow", err=True)
    sys.exit(code if isinstance(code, int) else 0)

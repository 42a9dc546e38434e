"""MkDocs hook: the command-line reference, drawn from the Typer app when the site is built.

``docs/reference/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it with
``unmask --help`` and every command's ``--help``, exactly as the command line prints them, so
the reference cannot drift from the code. Help that reads choices and defaults from the library
(``unmask train --help`` shows each preset's values) imports torch, which takes a few seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

MARKER = "<!-- cli-reference -->"
WIDTH = 100  # columns of the help text, as in a wide terminal


def _help(command, name: str, parent=None) -> str:
    import click

    ctx = click.Context(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    return command.get_help(ctx), ctx


def cli_reference() -> str:
    """Markdown for the root command and each sub-command, in the order of ``unmask --help``."""
    import typer.main

    from unmask.cli import app

    root = typer.main.get_command(app)
    text, root_ctx = _help(root, "unmask")
    parts = ["## unmask", "", "```text", text, "```", ""]
    for name in root.list_commands(root_ctx):
        command = root.get_command(root_ctx, name)
        if command is None or command.hidden:
            continue
        text, _ = _help(command, name, parent=root_ctx)
        parts += [f"## unmask {name}", "", "```text", text, "```", ""]
    return "\n".join(parts)


def on_config(config, **kwargs):
    """Import unmask from this checkout's ``src/`` even where it is not installed."""
    src = str(Path(config.config_file_path).parent / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    return config


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())

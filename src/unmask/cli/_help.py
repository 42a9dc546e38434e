"""Help text taken from the library when it is shown, so that ``--help`` tells what the code does.

Choices and defaults live in the library (the backbone registry, the training presets ...), whose
modules import torch. Reading them when a command is registered would make every ``unmask``
call pay that import (seconds); a :class:`CodeHelpCommand` reads them only when its help is drawn.
"""

from __future__ import annotations

from typing import Callable, Sequence

from typer.core import TyperCommand


def choice_list(choices: Sequence[str]) -> str:
    """``("a", "b")`` -> ``"[a|b]"``: how ``--help`` shows a choice."""
    return "[" + "|".join(choices) + "]"


class CodeHelpCommand(TyperCommand):
    """A command whose options' help is completed from the library when help is shown.

    ``fill_help`` (set per command with :func:`with_code_help`) maps an option's parameter name
    to ``(choices or None, note or None)``: the choices become the option's metavar, the note is
    appended to its help.
    """

    fill_help: Callable[[], dict[str, tuple[Sequence[str] | None, str | None]]] | None = None
    _filled = False

    def format_help(self, ctx, formatter):
        if not self._filled and self.fill_help is not None:
            notes = type(self).fill_help()
            for param in self.params:
                choices, note = notes.get(param.name, (None, None))
                if choices:
                    param.metavar = choice_list(choices)
                if note:
                    param.help = f"{param.help or ''} [{note}]".strip()
            self._filled = True
        return super().format_help(ctx, formatter)


def with_code_help(fill: Callable[[], dict]) -> type[CodeHelpCommand]:
    """A :class:`CodeHelpCommand` class whose help is completed by ``fill``."""
    return type("CodeHelp", (CodeHelpCommand,), {"fill_help": staticmethod(fill)})


def methods_note() -> dict:
    """The explanation methods, read from the library when --help is shown."""
    from unmask.explain.cam import EXPLAINERS

    return {"methods": (None, f"any of {', '.join(EXPLAINERS)}")}


def complete_from(choices: Callable[[], Sequence[str]]) -> Callable[[str], list[str]]:
    """A shell-completion function offering ``choices()`` that start with what was typed."""

    def complete(incomplete: str) -> list[str]:
        return [c for c in choices() if c.startswith(incomplete)]

    return complete

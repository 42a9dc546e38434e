"""Settings objects that name their fields as the command line names its flags.

``PrepareConfig(size=...)`` is ``unmask prepare --size``. Each setting is defined once, as a
dataclass field made by :func:`setting`: its name, type and default, its help, its choices and
its flag. The command line builds its options from those fields (:mod:`unmask.cli._settings`) and
:func:`named_settings` writes them into the class's docstring, so a new setting is one edit.

- :func:`named_settings`: a keyword that is not a setting raises one :class:`UnknownNameError`
  that lists the valid ones, not a bare ``TypeError``.
- :func:`upgrade_recorded`: settings recorded under an old name (in a manifest, a checkpoint, a
  resume record) are read under the new one, so old runs and data folders still load. Names
  given by a user (keywords, flags, a settings file) are today's only.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import textwrap
from typing import Any, Callable

from unmask.errors import unknown_name

# What settings were called when older manifests and checkpoints recorded them: read as today's
# names by :func:`upgrade_recorded`, so old data folders and runs still load.
PREPARE_RENAMED = {
    "size_px": "size",
    "max_side_px": "max_side",
    "second_pass_side_px": "second_pass_side",
    "seed": "split_seed",
}
TRAIN_RENAMED = {
    "size_px": "size",
    "effective_beta": "beta",
    "sampler": "batch_sampler",
    "max_steps_per_epoch": "max_steps",
}


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    more: str = "",
    choices=None,
    flag=None,
    cli_type: type | None = None,
    parse: Callable[[str], Any] | None = None,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A settings dataclass field with what the command line and the docstring say of it.

    Args:
        default, default_factory: as :func:`dataclasses.field`'s.
        help: one line for ``--help`` (and the start of the field's entry in the class docstring).
        more: what the docstring says beyond ``help``, for readers of the code.
        choices: the valid values: a sequence, or ``"module:NAME"`` of one, imported only when
            help is shown (the library's modules import torch).
        flag: the flag's declarations when not ``--name`` (``--name/--no-name`` for a bool), e.g.
            ``"--real-only/--with-fakes"``; ``False``: no flag (set in Python or a settings file).
        cli_type: the flag's type when not the field's (``Path`` for a file the field names as str).
        parse: turns the flag's text into the field's value (``"2/8"`` -> ``(2, 8)``).
    """
    metadata = {"help": help, "more": more, "choices": choices, "flag": flag, "cli_type": cli_type, "parse": parse}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def choices_of(field: dataclasses.Field) -> list | None:
    """The valid values of a :func:`setting` (importing the module that names them), or None."""
    choices = field.metadata.get("choices")
    if isinstance(choices, str):
        module, name = choices.split(":")
        choices = getattr(importlib.import_module(module), name)
    return None if choices is None else list(choices)


def default_of(field: dataclasses.Field) -> Any:
    """A field's default value (made by its factory if it has one); ``MISSING`` if it has none."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def help_text(field: dataclasses.Field, defaults: dict) -> str:
    """A :func:`setting`'s help, its ``{name}`` placeholders filled with the other settings' ``defaults``."""
    return field.metadata["help"].format(**defaults)


def _describe_fields(cls) -> str:
    """The ``Attributes:`` section of ``cls``'s docstring, written from its fields' help."""
    lines = ["", "", "    Attributes:"]
    defaults = {f.name: default_of(f) for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        if "help" in f.metadata:
            text = " ".join(part for part in (help_text(f, defaults), f.metadata["more"]) if part)
            lines.append(textwrap.fill(f"{f.name}: {text}", 100, initial_indent=" " * 8, subsequent_indent=" " * 12))
    return "\n".join(lines) if len(lines) > 3 else ""


def named_settings(kind: str):
    """Class decorator for a settings dataclass: unknown keywords list the valid settings, and the
    docstring lists each :func:`setting`'s help.

    Args:
        kind: what the settings are, for the message (``"prepare setting"``).
    """

    def decorate(cls):
        init = cls.__init__
        valid = tuple(f.name for f in dataclasses.fields(cls) if f.init)

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            for name in kwargs:
                if name not in valid:
                    raise unknown_name(kind, name, valid)
            init(self, *args, **kwargs)

        cls.__init__ = __init__
        cls.__doc__ = (cls.__doc__ or "").rstrip() + _describe_fields(cls)
        return cls

    return decorate


def upgrade_recorded(recorded: dict, renamed: dict[str, str]) -> dict:
    """``recorded`` with keys of ``renamed`` under their new names (a new name already there wins)."""
    upgraded = {renamed.get(k, k): v for k, v in recorded.items() if k not in renamed}
    for old, new in renamed.items():
        if old in recorded and new not in upgraded:
            upgraded[new] = recorded[old]
    return upgraded

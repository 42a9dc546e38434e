"""Command-line options made from a settings dataclass's fields (:func:`unmask.settings.setting`).

A command declares the options that are not settings (paths, ``--out``, ``--resume``) by hand
and ends in ``**settings``; :func:`settings_options` adds one option per setting with a flag,
named, typed, defaulted and explained by the field, and hands the command the values as the
field's type. A new setting is then one field, with no edit here or in the command.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import typing
from pathlib import Path
from typing import Optional

import typer

from unmask.cli._help import CodeHelpCommand, complete_from
from unmask.settings import choices_of, default_of, help_text

TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def flagged(cls) -> list[dataclasses.Field]:
    """The fields of ``cls`` that the command line sets (all but those made with ``flag=False``)."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata and f.metadata["flag"] is not False]


def help_of(cls, name: str) -> str:
    """The help of setting ``name``, its ``{other}`` placeholders filled with the other fields' defaults."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return help_text(fields[name], {k: default_of(f) for k, f in fields.items()})


def _flag_type(field: dataclasses.Field) -> type:
    meta = field.metadata
    if meta["cli_type"] or meta["parse"]:
        return meta["cli_type"] or str
    kind = field.type  # a string under ``from __future__ import annotations``
    if isinstance(kind, str):
        kind = TYPES.get(kind.removesuffix(" | None"))
    elif typing.get_args(kind):  # int | None
        kind = next((a for a in typing.get_args(kind) if a is not type(None)), None)
    if kind not in TYPES.values():
        raise TypeError(f"{field.name}: a flag of type {field.type} needs cli_type or parse in its setting()")
    return kind


def _shown(value):
    """A field default as its flag's default (``(0.81, 0.09, 0.1)`` as ``"0.81,0.09,0.1"``)."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def _option(cls, field: dataclasses.Field, unset: bool) -> inspect.Parameter:
    kind, flag = _flag_type(field), field.metadata["flag"]
    decls = (flag,) if isinstance(flag, str) else tuple(flag or ())
    if kind is bool and not decls:
        dash = field.name.replace("_", "-")
        decls = (f"--{dash}/--no-{dash}",)
    default = default_of(field)
    default = None if unset else ... if default is dataclasses.MISSING else _shown(default)
    complete = complete_from(lambda: choices_of(field)) if field.metadata["choices"] else None
    option = typer.Option(
        default, *decls, help=help_of(cls, field.name), show_default=not unset, autocompletion=complete
    )
    annotation = Optional[kind] if default is None else kind
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def _value(field: dataclasses.Field, value):
    """A flag's value as the field takes it."""
    if value is None:
        return None
    if field.metadata["parse"]:
        return field.metadata["parse"](value)
    return str(value) if isinstance(value, Path) else value


def _signature(command, cls, after: str, unset: bool, fields_as: dict) -> tuple[inspect.Signature, dict]:
    """``command``'s own parameters with one option per flagged field of ``cls`` after ``after``,
    and those fields by name."""
    own = {name: p for name, p in inspect.signature(command).parameters.items() if p.kind != p.VAR_KEYWORD}
    placed = {n for names in fields_as.values() for n in names}
    generated, by_name = [], {}
    for field in dataclasses.fields(cls):
        if field.name in fields_as:
            generated += [own[n].replace(kind=inspect.Parameter.KEYWORD_ONLY) for n in fields_as[field.name]]
        elif field in flagged(cls) and field.name not in own:
            generated.append(_option(cls, field, unset))
            by_name[field.name] = field
    names = [n for n in own if n not in placed]
    cut = names.index(after) + 1
    head = [own[n] for n in names[:cut]]
    tail = [own[n].replace(kind=inspect.Parameter.KEYWORD_ONLY) for n in names[cut:]]
    return inspect.Signature(head + generated + tail), by_name


def settings_options(
    settings: str, *, after: str, unset: bool = False, fields_as: dict[str, tuple[str, ...]] | None = None
):
    """Decorator of a command ending in ``**settings``: one option per flagged field of a
    settings dataclass, made when the command runs or shows help (:class:`SettingsCommand`), so
    that ``unmask`` does not import every stage's settings (and torch) when it starts.

    Args:
        settings: the settings dataclass, as ``"module:Class"``.
        after: the command's parameter the settings' options follow (in ``--help`` too).
        unset: every option defaults to None and None values are left out of ``settings`` (a
            preset or a settings file supplies them); else each takes its field's default.
        fields_as: fields the command sets through its own parameters, named by them (placed
            where the field is): ``{"costs": ("cost_missed_fake", "cost_false_alarm")}``. A field
            named as one of the command's parameters is the command's too.
    """

    def decorate(command):
        def build():
            module, name = settings.split(":")
            cls = getattr(importlib.import_module(module), name)
            signature, by_name = _signature(command, cls, after, unset, fields_as or {})

            @functools.wraps(command)
            def run(**kwargs):
                values = {k: _value(by_name[k], kwargs.pop(k)) for k in list(kwargs) if k in by_name}
                return command(**kwargs, **{k: v for k, v in values.items() if v is not None or not unset})

            run.__signature__ = signature
            return run

        @functools.wraps(command)
        def stub(**kwargs):
            raise RuntimeError(f"{command.__name__} runs through SettingsCommand, which builds its options first")

        # What typer sees when ``unmask`` starts: the command's own parameters; the rest come later.
        stub.__signature__ = inspect.Signature(
            [p for p in inspect.signature(command).parameters.values() if p.kind != p.VAR_KEYWORD]
        )
        stub.full_command = build
        return stub

    return decorate


class SettingsCommand(CodeHelpCommand):
    """A command decorated by :func:`settings_options`: its settings' options (and the callback
    that takes them) are made the first time its parameters are needed (to run, to show help,
    to complete), by typer from the generated signature."""

    _own_params: list
    _all_params: list | None = None

    @property
    def params(self) -> list:
        if self._all_params is None:
            built = typer.Typer(add_completion=False)
            built.command()(self.callback.full_command())
            command = typer.main.get_command(built)
            self._all_params, self.callback = command.params, command.callback
        return self._all_params

    @params.setter
    def params(self, value: list) -> None:
        self._own_params = value


def settings_command(fill) -> type[SettingsCommand]:
    """A :class:`SettingsCommand` class whose help is completed by ``fill`` (as :func:`with_code_help`'s)."""
    return type("SettingsHelp", (SettingsCommand,), {"fill_help": staticmethod(fill)})


def settings_help(cls, notes: dict[str, str] | None = None) -> dict:
    """``{parameter: (choices, note)}`` of ``cls``'s flagged fields, for :func:`unmask.cli._help.with_code_help`."""
    return {f.name: (choices_of(f), (notes or {}).get(f.name)) for f in flagged(cls)}

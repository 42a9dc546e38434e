"""Settings objects that name their fields as the command line names its flags.

``PrepareConfig(size=...)`` is ``unmask prepare --size``; a field is renamed only together with
its flag. Two helpers keep that promise honest for Python callers and for files written before a
rename:

- :func:`named_settings`: a keyword that is not a setting raises one :class:`UnknownNameError`
  that lists the valid ones (and the new name of a renamed one), not a bare ``TypeError``.
- :func:`upgrade_recorded`: settings recorded under an old name (in a manifest, a checkpoint, a
  resume record) are read under the new one, so old runs and data folders still load.
"""

from __future__ import annotations

import dataclasses
import functools

from unmask.errors import UnknownNameError, unknown_name

# What settings were called when older manifests and checkpoints recorded them: read as today's
# names by :func:`upgrade_recorded`, so old data folders and runs still load.
PREPARE_RENAMED = {"size_px": "size", "max_side_px": "max_side", "second_pass_side_px": "second_pass_side",
                   "seed": "split_seed"}
TRAIN_RENAMED = {"size_px": "size", "effective_beta": "beta", "sampler": "batch_sampler",
                 "max_steps_per_epoch": "max_steps"}


def unknown_setting(kind: str, name: str, valid, renamed: dict[str, str] | None = None) -> UnknownNameError:
    """The error for a keyword ``name`` that is not one of ``valid`` (a renamed one says its new name)."""
    if renamed and name in renamed:
        return UnknownNameError(f"The {kind} {name!r} is now called {renamed[name]!r}")
    return unknown_name(kind, name, valid)


def named_settings(kind: str, renamed: dict[str, str] | None = None):
    """Class decorator for a settings dataclass: unknown keywords list the valid settings.

    Args:
        kind: what the settings are, for the message (``"prepare setting"``).
        renamed: ``{old name: new name}`` of renamed fields, for a precise hint.
    """

    def decorate(cls):
        init = cls.__init__
        valid = tuple(f.name for f in dataclasses.fields(cls) if f.init)

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            for name in kwargs:
                if name not in valid:
                    raise unknown_setting(kind, name, valid, renamed)
            init(self, *args, **kwargs)

        cls.__init__ = __init__
        return cls

    return decorate


def upgrade_recorded(recorded: dict, renamed: dict[str, str]) -> dict:
    """``recorded`` with keys of ``renamed`` under their new names (a new name already there wins)."""
    upgraded = {renamed.get(k, k): v for k, v in recorded.items() if k not in renamed}
    for old, new in renamed.items():
        if old in recorded and new not in upgraded:
            upgraded[new] = recorded[old]
    return upgraded

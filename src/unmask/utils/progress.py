"""One way for long work to say where it stands: a :class:`Progress` snapshot to a callback.

The library never draws progress bars: ``prepare``, ``train``, ``evaluate`` and
``explain`` each take ``progress: ProgressCallback | None`` and hand it snapshots of the whole
task (not of one epoch or one stage), each with its own ETA, so a notebook, a web page or the CLI
(:mod:`unmask.cli._progress`) can show them however it likes::

    from unmask.training import train
    train("runs/ffpp", "runs/x", config, progress=lambda p: print(p.describe()))

A task whose parts cost differently counts them in weighted units (training counts a training
image as three scored images: a forward and a backward pass), so that the share done, and the
ETA taken from it, track time rather than items.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Progress", "ProgressCallback", "ProgressMeter", "format_seconds"]


@dataclass(frozen=True)
class Progress:
    """Where a task stands.

    Attributes:
        task: what runs (``"prepare"``, ``"train"``, ``"evaluate"``, ``"explain"``, ``"crop cache"``).
        stage: what it does now (``"epoch 3/20: training"``, ``"calibration"`` ...).
        done: work done, in ``unit``, of ``total``.
        total: all the work the task expects (an upper bound where it may stop early).
        unit: what ``done`` counts (``"video"``, ``"image"``, ``"heatmap"``, ``"work"`` for weighted units).
        elapsed_s: seconds since the task started.
        info: figures worth showing beside the bar (faces found, failures ...).
        done_before: work that was already done when this call started (videos prepared by an
            earlier run, epochs before a resume): counted in ``done``, not in the pace.
    """

    task: str
    stage: str
    done: float
    total: float
    unit: str
    elapsed_s: float
    info: dict = field(default_factory=dict)
    done_before: float = 0.0

    @property
    def fraction(self) -> float:
        """Share of the work done, in [0, 1]."""
        return min(1.0, self.done / self.total) if self.total > 0 else 1.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the average pace so far; None before any work is done."""
        done_now = self.done - self.done_before
        if done_now <= 0 or self.total <= 0:
            return None
        return self.elapsed_s * max(0.0, self.total - self.done) / done_now

    def describe(self) -> str:
        """One line for a log: ``train: epoch 2/5: validation, 43% (ETA 1:02)``."""
        eta = format_seconds(self.eta_s) if self.eta_s is not None else "?"
        return f"{self.task}: {self.stage}, {self.fraction:.0%} (ETA {eta})"


ProgressCallback = Callable[[Progress], None]


def format_seconds(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressMeter:
    """Counts one task's work and reports each step of it to a callback (or to nobody).

    Args:
        callback: receives a :class:`Progress` after every :meth:`advance`; None: count silently.
        task: the task's name.
        total: the work expected, in ``unit``.
        unit: what is counted.
        done: work already done before this call (a resumed task), out of ``total``.
    """

    def __init__(
        self, callback: ProgressCallback | None, task: str, total: float, *, unit: str = "work", done: float = 0.0
    ):
        self.callback, self.task, self.total, self.unit = callback, task, float(total), unit
        self.done = self.done_before = float(done)
        self.stage = ""
        self.started = time.perf_counter()

    def advance(self, amount: float = 1.0, *, stage: str | None = None, **info) -> None:
        """Count ``amount`` more work done (in ``stage``, when it changes) and report."""
        self.done += amount
        self.report(stage, **info)

    def report(self, stage: str | None = None, **info) -> None:
        """Report where the task stands (also with no new work: a new stage starting)."""
        if stage is not None:
            self.stage = stage
        if self.callback is not None:
            self.callback(
                Progress(
                    self.task,
                    self.stage,
                    self.done,
                    self.total,
                    self.unit,
                    time.perf_counter() - self.started,
                    info,
                    self.done_before,
                )
            )

    def finish(self, stage: str = "done") -> None:
        """Report the task complete (an early stop ends short of its planned total)."""
        self.total = self.done
        self.report(stage)

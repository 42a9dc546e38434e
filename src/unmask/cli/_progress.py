"""Progress bars on the terminal for the library's :class:`unmask.utils.progress.Progress` reports."""

from __future__ import annotations

import os

from tqdm import tqdm

from unmask.utils.progress import Progress


def is_main_process() -> bool:
    """True outside ``torchrun``, and on its rank 0: the one process that reports."""
    return os.environ.get("RANK", "0") == "0"


class ProgressBars:
    """A progress callback that draws one bar per task, with the task's ETA.

    Bars are drawn only on a terminal (tqdm's ``disable=None``) and only by rank 0. Counted work
    shows its count (``12/40 video``); weighted work (unit ``work``) shows its share.
    """

    def __init__(self):
        self.bars: dict[str, tqdm] = {}
        self.disable = None if is_main_process() else True  # tqdm: None = only on a terminal

    def __call__(self, p: Progress) -> None:
        bar = self.bars.get(p.task)
        if bar is None:
            counted = p.unit != "work"
            bar = tqdm(
                total=p.total,
                desc=p.task,
                unit=p.unit,
                disable=self.disable,
                leave=False,
                # smoothing 0: the ETA from the average pace of the whole task, as Progress.eta_s
                smoothing=0,
                bar_format=None if counted else "{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]",
            )
            self.bars[p.task] = bar
        bar.total = p.total
        postfix = ", ".join([p.stage] * bool(p.stage) + [f"{k} {v}" for k, v in p.info.items()])
        bar.set_postfix_str(postfix, refresh=False)
        bar.update(p.done - bar.n)

    def write(self, line: str) -> None:
        """Print a line above the bars (only on the reporting process)."""
        if is_main_process():
            tqdm.write(line)

    def close(self, task: str | None = None) -> None:
        """Take down one task's bar, or all."""
        for name in [task] if task else list(self.bars):
            bar = self.bars.pop(name, None)
            if bar is not None:
                bar.close()

"""A file of verdicts that grows one input at a time and that a rerun goes on from.

``jsonl`` holds each :class:`~unmask.predict.result.Prediction` whole; ``csv`` and ``parquet`` one
row of :data:`COLUMNS` each (the rows ``unmask predict --format csv`` prints). Each verdict is
written and flushed as it comes, so that a killed run keeps all it finished; a line the kill cut
short is dropped when the file is opened again. Parquet cannot grow: its rows gather in
``FILE.partial.csv`` and the Parquet file is written from them when the run ends.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from unmask.errors import UnmaskError
from unmask.utils.atomic import write_atomic

FILE_FORMATS = ("jsonl", "csv", "parquet")
COLUMNS = (
    "verdict",
    "p_fake",
    "threshold",
    "frames_with_face",
    "frames_sampled",
    "persons",
    "seconds",
    "input",
    "reason",
    "note",
    "duration_s",
    "decoded_s",
)


def row_values(p) -> dict:
    """A prediction's :data:`COLUMNS`, as text for a table or a CSV row."""
    return {
        "verdict": p.verdict,
        "p_fake": "" if p.p_fake is None else f"{p.p_fake:.4f}",
        "threshold": f"{p.threshold:.4f}",
        "frames_with_face": p.frames_with_face,
        "frames_sampled": p.frames_sampled,
        "persons": len(p.tracks),
        "seconds": f"{p.timings.get('total', 0):.2f}",
        "input": p.input,
        "reason": p.reason or "",
        "note": p.note or "",
        "duration_s": "" if p.duration_s is None else p.duration_s,
        "decoded_s": "" if p.decoded_s is None else p.decoded_s,
    }


def csv_line(values) -> str:
    """One CSV record, quoted by the csv module (a comma, a quote, a newline or a carriage return
    in a file name is quoted), without its line end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)  # \r\n: both characters force quoting
    return buffer.getvalue()[:-2]


def file_format(path: str | Path, fmt: str | None = None) -> str:
    """``fmt``, else the format ``path``'s suffix names; one clear line when neither is known."""
    fmt = fmt or Path(path).suffix.lower().lstrip(".")
    if fmt not in FILE_FORMATS:
        raise UnmaskError(
            f"A results file is {', '.join(FILE_FORMATS)} (from --format or its suffix), "
            f"not {fmt or 'without a suffix'}: {path}"
        )
    return fmt


class ResultsFile:
    """The verdicts file at ``path`` in ``fmt``; :meth:`judged` lists the inputs it already holds.

    Use as a context manager: entering opens it for more verdicts (:meth:`write`), leaving makes
    the Parquet file, if that is the format.
    """

    def __init__(self, path: str | Path, fmt: str | None = None):
        self.path = Path(path)
        self.fmt = file_format(self.path, fmt)
        self.stream = self.path.with_name(self.path.name + ".partial.csv") if self.fmt == "parquet" else self.path
        self._fh = None

    def judged(self) -> set[str]:
        """The inputs already in the file (as they were named to the run that judged them)."""
        self._carry_parquet()
        if not self.stream.is_file():
            return set()
        text = self._complete_text()
        if self.fmt == "jsonl":
            return {json.loads(line)["input"] for line in text.splitlines() if line.strip()}
        return {row["input"] for row in csv.DictReader(io.StringIO(text, newline=""))}

    def __enter__(self) -> "ResultsFile":
        self._carry_parquet()
        self.stream.parent.mkdir(parents=True, exist_ok=True)
        if self.stream.is_file():  # drop a last line cut short by a kill
            kept = len(self._complete_text().encode())
            with open(self.stream, "r+b") as fh:
                fh.truncate(kept)
        fresh = not self.stream.is_file() or self.stream.stat().st_size == 0
        self._fh = open(self.stream, "a", encoding="utf-8", newline="")
        if fresh and self.fmt != "jsonl":
            self._line(csv_line(COLUMNS))
        return self

    def write(self, prediction) -> None:
        """Add one verdict, on disk at once."""
        if self.fmt == "jsonl":
            self._line(prediction.to_json())
        else:
            values = row_values(prediction)
            self._line(csv_line([values[c] for c in COLUMNS]))

    def __exit__(self, *exc) -> None:
        self._fh.close()
        if self.fmt == "parquet" and exc[0] is None:
            import pandas as pd

            table = pd.read_csv(
                self.stream,
                dtype={"input": str, "reason": str, "note": str},
                keep_default_na=False,
                na_values={c: [""] for c in COLUMNS if c not in ("input", "reason", "note")},
            )
            with write_atomic(self.path, "wb") as fh:
                table.to_parquet(fh, index=False)
            os.remove(self.stream)

    def _line(self, text: str) -> None:
        self._fh.write(text + "\n")
        self._fh.flush()

    def _complete_text(self) -> str:
        text = self.stream.read_bytes().decode("utf-8", errors="replace")
        return text[: text.rfind("\n") + 1]

    def _carry_parquet(self) -> None:
        """A finished Parquet file being added to: its rows become the start of the partial file."""
        if self.fmt == "parquet" and self.path.is_file() and not self.stream.is_file():
            import pandas as pd

            with write_atomic(self.stream, "w") as fh:
                pd.read_parquet(self.path).to_csv(fh, index=False, lineterminator="\n")

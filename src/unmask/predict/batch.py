"""Many inputs: expand folders, judge each in turn, write explanations and overlays on request."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from unmask.errors import UnmaskError
from unmask.predict.detector import IMAGE_SUFFIXES, Detector
from unmask.predict.result import Prediction


def list_inputs(paths) -> list[Path]:
    """The files to judge: files as given, folders searched recursively (see :func:`find_inputs`).

    Raises:
        UnmaskError: a path does not exist or cannot be read, or a folder holds no video or image.
    """
    return find_inputs(paths)[0]


def find_inputs(paths) -> tuple[list[Path], list[Path]]:
    """``(inputs, skipped)``: files as given, and what folders hold, searched recursively.

    In a folder, a file whose suffix names a video or an image is an input; any other file is
    one too when PyAV opens it and finds a picture in it (``.mpg``, ``.ts``, ``.3gp``, no suffix
    ...; its headers are read, nothing is decoded); the rest is ``skipped``, for the caller to
    report. A file named directly is always an input (an unreadable one gets an
    ``inconclusive`` result), except a ``.csv`` file: a list of inputs, one per row, in its
    ``path`` column (else its first), relative to the list's folder.

    Raises:
        UnmaskError: a path does not exist or cannot be read, or a folder holds no video or image.
    """
    from unmask.video.probe import media_kind
    from unmask.video.reader import VIDEO_SUFFIXES

    suffixes = set(VIDEO_SUFFIXES) | set(IMAGE_SUFFIXES)
    out: list[Path] = []
    skipped: list[Path] = []
    for path in map(Path, paths):
        try:
            is_dir = path.is_dir()
            path.stat()
        except FileNotFoundError:
            raise UnmaskError(f"No such file or folder: {_short(path)}") from None
        except OSError as exc:  # a name too long, a loop of links, no permission ...
            raise UnmaskError(f"Cannot read {_short(path)} ({exc.strerror or exc}); check the path") from None
        if not is_dir:
            out += _listed(path) if path.suffix.lower() == ".csv" else [path]
            continue
        found = []
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            if file.suffix.lower() in suffixes or media_kind(file) is not None:
                found.append(file)
            else:
                skipped.append(file)
        if not found:
            raise UnmaskError(
                f"No video or image in {_short(path)} (looked for {', '.join(sorted(suffixes))} "
                "and any other file PyAV can open)"
            )
        out += found
    return list(dict.fromkeys(out)), skipped


def _listed(path: Path) -> list[Path]:
    """The inputs a CSV list names (see :func:`find_inputs`)."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh)) or [[]]
    column = rows[0].index("path") if "path" in rows[0] else 0
    listed = [path.parent / row[column] for row in rows[1:] if len(row) > column and row[column].strip()]
    if not listed:
        raise UnmaskError(f"{_short(path)} lists no input (a header, then one path per row)")
    return listed


def _short(path: Path, limit: int = 120) -> str:
    text = str(path)
    return text if len(text) <= limit else text[: limit // 2 - 2] + "..." + text[-(limit // 2 - 2) :]


def predict_many(
    detector: Detector,
    paths,
    *,
    num_frames: int | None = None,
    explain_dir: str | Path | None = None,
    methods=None,
    max_faces: int = 4,
    keep_faces: bool = False,
) -> Iterator[Prediction]:
    """Judge each of ``paths`` in turn (a bad file gives an inconclusive result, never an error).

    With ``explain_dir``, the heatmaps of each judged input's ``max_faces`` most suspicious faces
    go there (into a subfolder per input when there are several; see :func:`write_heatmaps`), and
    the prediction says where their evidence lies (``Prediction.regions``). ``keep_faces``: keep
    the face crops in each prediction (for a report, :func:`unmask.predict.report.write_report`).
    """
    paths = list(paths)
    used: set[str] = set()
    for path in paths:
        prediction = detector.predict(path, keep_faces=keep_faces or explain_dir is not None, num_frames=num_frames)
        if explain_dir is not None and prediction.timeline:
            folder = Path(explain_dir)
            if len(paths) > 1:
                name = Path(path).stem
                while name in used:
                    name += "_"
                used.add(name)
                folder = folder / name
            prediction = write_heatmaps(detector, prediction, folder, methods=methods, max_faces=max_faces)
        yield prediction


def write_heatmaps(
    detector: Detector, prediction: Prediction, out_dir: str | Path, *, methods=None, max_faces: int = 4
) -> Prediction:
    """Explain ``prediction``'s most suspicious faces into ``out_dir``: PNGs and ``explanations.json``
    (the prediction itself under ``"prediction"``); return the prediction with its ``regions``."""
    from unmask.explain.explainer import write_explanations

    heatmaps = detector.explain(prediction, methods=methods, max_faces=max_faces)
    prediction = prediction.with_regions(heatmaps)
    write_explanations(
        heatmaps,
        out_dir,
        stem=Path(prediction.input).stem,
        threshold=detector.threshold,
        index={
            "input": prediction.input,
            "run": detector.source,
            "threshold": detector.threshold,
            "prediction": prediction.to_dict(),
        },
    )
    return prediction

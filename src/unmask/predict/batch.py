"""Many inputs: expand folders, judge each in turn, write explanations and overlays on request."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from unmask.errors import UnmaskError
from unmask.predict.detector import IMAGE_SUFFIXES, Detector
from unmask.predict.result import Prediction


def list_inputs(paths) -> list[Path]:
    """The files to judge: files as given, folders searched recursively for videos and images.

    Raises:
        UnmaskError: a path does not exist, or a folder holds no video or image.
    """
    from unmask.video.reader import VIDEO_SUFFIXES

    suffixes = set(VIDEO_SUFFIXES) | set(IMAGE_SUFFIXES)
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            if not found:
                raise UnmaskError(f"No video or image in {path} (looked for {', '.join(sorted(suffixes))})")
            out += found
        elif path.exists():
            out.append(path)
        else:
            raise UnmaskError(f"No such file or folder: {path}")
    return list(dict.fromkeys(out))


def predict_many(detector: Detector, paths, *, num_frames: int | None = None, explain_dir: str | Path | None = None,
                 methods=None, max_faces: int = 4, keep_faces: bool = False) -> Iterator[Prediction]:
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


def write_heatmaps(detector: Detector, prediction: Prediction, out_dir: str | Path, *, methods=None,
                   max_faces: int = 4) -> Prediction:
    """Explain ``prediction``'s most suspicious faces into ``out_dir``: PNGs and ``explanations.json``
    (the prediction itself under ``"prediction"``); return the prediction with its ``regions``."""
    from unmask.explain.explainer import write_explanations

    heatmaps = detector.explain(prediction, methods=methods, max_faces=max_faces)
    prediction = prediction.with_regions(heatmaps)
    write_explanations(heatmaps, out_dir, stem=Path(prediction.input).stem, threshold=detector.threshold,
                       index={"input": prediction.input, "run": detector.source,
                              "threshold": detector.threshold, "prediction": prediction.to_dict()})
    return prediction

"""``unmask explain``: heatmaps for a face image or for the faces of a video, most suspicious first.

The faces are found, cut and scored by the run's :class:`~unmask.predict.Detector`, so the
heatmaps explain exactly the scores ``unmask predict`` gives.
"""

from __future__ import annotations

import logging
from pathlib import Path

from unmask.data.config import crop_differences
from unmask.errors import NoFaceFoundError, SettingError, UnmaskError
from unmask.explain.cam import PAPER_METHODS, check_methods
from unmask.explain.explainer import Explanation, write_explanations
from unmask.explain.overlay import MIN_SIDE_PX
from unmask.predict.detector import Detector
from unmask.utils.outdir import ensure_out_dir
from unmask.utils.progress import ProgressCallback, ProgressMeter

logger = logging.getLogger(__name__)


def explain_file(
    run_dir: str | Path,
    path: str | Path,
    out_dir: str | Path,
    *,
    methods=PAPER_METHODS,
    max_faces: int = 8,
    is_crop: bool = False,
    num_frames: int | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> list[Explanation]:
    """Explain why the run judges the faces in ``path`` (an image or a video) as it does.

    The faces are found, cut and scored by the run's :class:`unmask.Detector` (for a video:
    ``num_frames`` sampled frames, default as the training data was, cut exactly as the run's
    training data was), and the ``max_faces`` most suspicious are explained. Writes one PNG per
    face and method (heatmap over the face, jet, alpha 0.5), the face itself, and
    ``explanations.json``. ``progress`` gets a :class:`unmask.utils.progress.Progress` while the
    faces are found (one unit of work) and after each method (one unit each).

    Raises:
        UnknownNameError: an unknown method; NoFaceFoundError: no face in the input;
        UnmaskError: an unreadable input.
    """
    methods = check_methods(methods)
    path, out_dir = Path(path), Path(out_dir)
    if not methods:
        raise SettingError("Name at least one explanation method in methods", "methods")
    if max_faces < 1:
        raise SettingError(f"max_faces must be at least 1, not {max_faces}", "max_faces")
    if not path.is_file():
        raise UnmaskError(f"No such file: {path}")
    detector = Detector.load(run_dir, device=device)
    ensure_out_dir(out_dir)  # a file, a read-only folder: one line now, not after the work
    if is_crop:  # faces found here are cut as in training; a given crop may not have been
        warn_crop_file_differences(path, detector.prepare_config.recorded())
    meter = ProgressMeter(progress, "explain", 1 + len(methods), unit="work")

    def on_faces(stage: str, fraction: float) -> None:
        meter.done = min(1.0, fraction)
        meter.report(f"finding faces: {stage}")

    prediction = detector.predict(path, keep_faces=True, num_frames=num_frames, is_crop=is_crop, progress=on_faces)
    if prediction.reason_code == "unreadable":
        raise UnmaskError(prediction.reason)
    if prediction.reason_code == "no_face":
        hint = "; if it is already a face crop, pass is_crop=True" if prediction.kind == "image" else ""
        raise NoFaceFoundError(
            f"No face found in {path.name} ({prediction.frames_sampled} frames looked at){hint}", "is_crop"
        )
    meter.done = 1.0
    logger.info(
        "explaining the %d most suspicious of %d faces with %s",
        min(max_faces, len(prediction.timeline)),
        len(prediction.timeline),
        ", ".join(methods),
    )
    # shown at least MIN_SIDE_PX large: a 64 px model's maps would be postage stamps
    heatmaps = detector.explain(
        prediction,
        methods=methods,
        max_faces=max_faces,
        size_px=max(MIN_SIDE_PX, detector.size_px),
        on_method=lambda method: meter.advance(stage=f"{method} done"),
    )
    meter.finish()
    return write_explanations(
        heatmaps,
        out_dir,
        stem=path.stem,
        threshold=detector.threshold,
        index={"input": str(path), "run": str(run_dir), "threshold": detector.threshold},
    )


def warn_crop_file_differences(path: Path, trained: dict) -> list[str]:
    """Warn when the face crop ``path`` looks cut unlike the run's training crops (side, file
    format; its margin cannot be told from the file); return how."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            (width, height), kind = image.size, (image.format or "").lower()
    except (OSError, UnidentifiedImageError):
        return []  # not an image: the Detector says so in its own words
    seen = {"size": width if width == height else None, "image_format": {"jpeg": "jpg"}.get(kind, kind)}
    differences = crop_differences(trained, seen)
    if width != height:
        differences.insert(0, f"{width}x{height} px, not square as in training")
    if differences:
        logger.warning(
            "%s was cut unlike the run's training crops (%s): the heatmaps show what the model sees in it, "
            "which may differ from what it learnt",
            path.name,
            "; ".join(differences),
        )
    return differences

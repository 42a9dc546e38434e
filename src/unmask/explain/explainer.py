"""``unmask explain``: heatmaps for a face image or for the faces of a video, most suspicious first."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from unmask.data.crop_video import crop_differences
from unmask.errors import NoFaceFoundError, SettingError, UnmaskError
from unmask.explain.cam import PAPER_METHODS, check_methods, explain_batch
from unmask.explain.faithfulness import deletion_faithfulness
from unmask.explain.overlay import MIN_SIDE_PX, contact_sheet
from unmask.models import build_transform
from unmask.models.inference import default_device, preprocess_crops, score_crops
from unmask.models.registry import spec_from_dict
from unmask.utils.atomic import atomic_path
from unmask.utils.outdir import ensure_out_dir
from unmask.utils.progress import ProgressCallback, ProgressMeter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Explanation:
    """One heatmap of one face."""

    frame_index: int
    time_s: float
    track_id: int
    p_fake: float
    method: str
    png: str
    faithfulness: float


def explain_crops(model, meta: dict, crops: list[np.ndarray], methods, *, device=None,
                  on_method=None) -> tuple[np.ndarray, dict]:
    """Score face crops and explain them with each of ``methods``.

    Args:
        crops: ``(h, w, 3) uint8`` RGB face crops (any size: the run's preprocessing resizes).
        on_method: called with each method's name when its heatmaps are done.

    Returns:
        ``(p_fake (n,), {method: (heatmaps (n, S, S) in [0, 1], faithfulness (n,))})``.
    """
    device = default_device(device)
    model = model.to(device).eval()
    transform = build_transform(spec_from_dict(meta["spec"]), meta["size_px"])
    scores = score_crops(model, crops, transform, meta, device)
    x = preprocess_crops(crops, transform).to(device)
    out = {}
    for method in methods:
        maps = explain_batch(model, x, method)
        out[method] = (maps, deletion_faithfulness(model, x, maps))
        if on_method:
            on_method(method)
    return scores, out


def explain(run_dir: str | Path, path: str | Path, out_dir: str | Path, *, methods=PAPER_METHODS,
            max_faces: int = 8, is_crop: bool = False, num_frames: int | None = None,
            device: str | None = None, progress: ProgressCallback | None = None) -> list[Explanation]:
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
    from unmask.predict import Detector

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
        raise NoFaceFoundError(f"No face found in {path.name} ({prediction.frames_sampled} frames looked at){hint}",
                               "is_crop")
    meter.done = 1.0
    logger.info("explaining the %d most suspicious of %d faces with %s", min(max_faces, len(prediction.timeline)),
                len(prediction.timeline), ", ".join(methods))
    # shown at least MIN_SIDE_PX large: a 64 px model's maps would be postage stamps
    heatmaps = detector.explain(prediction, methods=methods, max_faces=max_faces,
                                size_px=max(MIN_SIDE_PX, detector.size_px),
                                on_method=lambda method: meter.advance(stage=f"{method} done"))
    meter.finish()
    return write_explanations(heatmaps, out_dir, stem=path.stem, threshold=detector.threshold,
                              index={"input": str(path), "run": str(run_dir), "threshold": detector.threshold})


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
        logger.warning("%s was cut unlike the run's training crops (%s): the heatmaps show what the model sees in it, "
                       "which may differ from what it learnt", path.name, "; ".join(differences))
    return differences


def write_explanations(heatmaps, out_dir: str | Path, *, stem: str, index: dict,
                       index_name: str = "explanations.json", threshold: float | None = None) -> list[Explanation]:
    """Write each face once and each :class:`unmask.predict.Heatmap` over it as PNG, a contact
    sheet of them all, and an index.

    Files are ``{stem}_{frame:06d}_{track:02d}_face.png``, ``..._{method}.png`` and
    ``{stem}_sheet.png`` (every face, its p(fake), each method's heatmap and faithfulness, a
    colour bar); the index (``index_name``) is ``index`` plus ``"sheet"`` and ``"explanations"``:
    one entry per heatmap with its PNG's name (faithfulness ``null`` for a flat map).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    explanations, faces = [], {}
    for h in heatmaps:
        face_stem = f"{stem}_{h.frame_index:06d}_{h.track_id:02d}"
        if face_stem not in faces:
            _write_png(out_dir / f"{face_stem}_face.png", h.face)
            faces[face_stem] = {"face": h.face, "label": f"frame {h.frame_index}, track {h.track_id}",
                                "p_fake": h.p_fake, "overlays": {}, "faithfulness": {}}
        faces[face_stem]["overlays"][h.method] = h.overlay
        faces[face_stem]["faithfulness"][h.method] = h.faithfulness
        name = f"{face_stem}_{h.method}.png"
        _write_png(out_dir / name, h.overlay)
        explanations.append(Explanation(h.frame_index, h.time_s, h.track_id, h.p_fake, h.method, name, h.faithfulness))
    sheet = None
    if faces:
        methods = list(dict.fromkeys(h.method for h in heatmaps))
        sheet = sheet_name(stem)
        _write_png(out_dir / sheet, contact_sheet(list(faces.values()), methods, title=stem, threshold=threshold))
    entries = [{**asdict(e), "faithfulness": e.faithfulness if np.isfinite(e.faithfulness) else None}
               for e in explanations]
    with atomic_path(out_dir / index_name) as tmp:
        tmp.write_text(json.dumps({**index, "sheet": sheet, "explanations": entries}, indent=1))
    return explanations


def sheet_name(stem: str) -> str:
    """The contact sheet's file name for an input named ``stem``."""
    return f"{stem}_sheet.png"


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # the temporary name keeps the .png suffix that cv2 needs
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")

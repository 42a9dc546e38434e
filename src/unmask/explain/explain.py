"""``unmask explain``: heatmaps for a face image or for the faces of a video, most suspicious first."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from unmask.errors import NoFaceFoundError, UnmaskError
from unmask.explain.cam import PAPER_METHODS, check_methods, explain_batch
from unmask.explain.faithfulness import deletion_faithfulness
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
        raise UnmaskError("Name at least one explanation method (--methods)")
    if max_faces < 1:
        raise UnmaskError(f"--max-faces must be at least 1, not {max_faces}")
    if not path.is_file():
        raise UnmaskError(f"No such file: {path}")
    detector = Detector.load(run_dir, device=device)
    ensure_out_dir(out_dir)  # a file, a read-only folder: one line now, not after the work
    meter = ProgressMeter(progress, "explain", 1 + len(methods), unit="work")

    def on_faces(stage: str, fraction: float) -> None:
        meter.done = min(1.0, fraction)
        meter.report(f"finding faces: {stage}")

    prediction = detector.predict(path, keep_faces=True, num_frames=num_frames, is_crop=is_crop, progress=on_faces)
    if prediction.reason_code == "unreadable":
        raise UnmaskError(prediction.reason)
    if prediction.reason_code == "no_face":
        hint = "; if it is already a face crop, pass --is-crop" if prediction.kind == "image" else ""
        raise NoFaceFoundError(f"No face found in {path.name} ({prediction.frames_sampled} frames looked at){hint}")
    meter.done = 1.0
    logger.info("explaining the %d most suspicious of %d faces with %s", min(max_faces, len(prediction.timeline)),
                len(prediction.timeline), ", ".join(methods))
    heatmaps = detector.explain(prediction, methods=methods, max_faces=max_faces, size_px=detector.size_px,
                                on_method=lambda method: meter.advance(stage=f"{method} done"))
    meter.finish()
    return write_explanations(heatmaps, out_dir, stem=path.stem,
                              index={"input": str(path), "run": str(run_dir), "threshold": detector.threshold})


def write_explanations(heatmaps, out_dir: str | Path, *, stem: str, index: dict,
                       index_name: str = "explanations.json") -> list[Explanation]:
    """Write each face once and each :class:`unmask.predict.Heatmap` over it as PNG, and an index.

    Files are ``{stem}_{frame:06d}_{track:02d}_face.png`` and ``..._{method}.png``; the index
    (``index_name``) is ``index`` plus ``"explanations"``: one entry per heatmap with its PNG's name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    explanations, written = [], set()
    for h in heatmaps:
        face_stem = f"{stem}_{h.frame_index:06d}_{h.track_id:02d}"
        if face_stem not in written:
            _write_png(out_dir / f"{face_stem}_face.png", h.face)
            written.add(face_stem)
        name = f"{face_stem}_{h.method}.png"
        _write_png(out_dir / name, h.overlay)
        explanations.append(Explanation(h.frame_index, h.time_s, h.track_id, h.p_fake, h.method, name, h.faithfulness))
    with atomic_path(out_dir / index_name) as tmp:
        tmp.write_text(json.dumps({**index, "explanations": [asdict(e) for e in explanations]}, indent=1))
    return explanations


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # the temporary name keeps the .png suffix that cv2 needs
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")

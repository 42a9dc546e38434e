"""``unmask explain``: heatmaps for a face image or for the faces of a video, most suspicious first."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from unmask.data.crop_video import PrepareConfig, make_extractor
from unmask.errors import NoFaceFoundError, UnmaskError
from unmask.explain.cam import PAPER_METHODS, check_methods, explain_batch
from unmask.explain.faithfulness import deletion_faithfulness
from unmask.explain.overlay import overlay_heatmap
from unmask.models import build_transform
from unmask.models.inference import default_device
from unmask.models.registry import spec_from_dict
from unmask.training.calibration import calibrated_p_fake
from unmask.training.checkpoint import load_classifier
from unmask.utils.atomic import atomic_path
from unmask.utils.outdir import ensure_out_dir
from unmask.video.reader import VIDEO_SUFFIXES, Frame
from unmask.video.sampling import sample_frames

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


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


def explain_crops(model, meta: dict, crops: list[np.ndarray], methods, *, device=None) -> tuple[np.ndarray, dict]:
    """Score face crops and explain them with each of ``methods``.

    Args:
        crops: ``(h, w, 3) uint8`` RGB face crops (any size: the run's preprocessing resizes).

    Returns:
        ``(p_fake (n,), {method: (heatmaps (n, S, S) in [0, 1], faithfulness (n,))})``.
    """
    device = default_device(device)
    model = model.to(device).eval()
    transform = build_transform(spec_from_dict(meta["spec"]), meta["size_px"])
    x = torch.stack([transform(c) for c in crops]).to(device)
    with torch.no_grad():
        scores = calibrated_p_fake(model(x).float().cpu().numpy(), meta)
    out = {}
    for method in methods:
        maps = explain_batch(model, x, method)
        out[method] = (maps, deletion_faithfulness(model, x, maps))
    return scores, out


def _faces(path: Path, meta: dict, *, is_crop: bool, num_frames: int | None) -> list[tuple[Frame, int, np.ndarray]]:
    """``(frame, track id, crop)`` for the faces of an image or video, cut as the run's data was."""
    config = PrepareConfig.from_recorded(meta["data"].get("prepare") or {"size_px": meta["size_px"]})
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UnmaskError(f"Cannot read image {path}")
        frames = [Frame(0, 0.0, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))]
        if is_crop:
            return [(frames[0], 0, frames[0].image)]
    elif suffix in VIDEO_SUFFIXES:
        sampler = replace(config.sampler, num_frames=num_frames) if num_frames else config.sampler
        frames = sample_frames(path, sampler)
    else:
        raise UnmaskError(f"{path.name} is neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a video "
                          f"({', '.join(VIDEO_SUFFIXES)})")
    crops = make_extractor(config)(frames)
    if not crops:
        hint = "; if it is already a face crop, pass --is-crop" if suffix in IMAGE_SUFFIXES else ""
        raise NoFaceFoundError(f"No face found in {path.name} ({len(frames)} frames looked at){hint}")
    by_index = {f.index: f for f in frames}
    return [(by_index[c.frame_index], c.track_id, c.image) for c in crops]


def explain(run_dir: str | Path, path: str | Path, out_dir: str | Path, *, methods=PAPER_METHODS,
            max_faces: int = 8, is_crop: bool = False, num_frames: int | None = None,
            device: str | None = None) -> list[Explanation]:
    """Explain why the run judges the faces in ``path`` (an image or a video) as it does.

    For a video, its faces are sampled (``num_frames``, default as the training data was) and cut
    exactly as the run's training data was (detector, thresholds, margin, size), scored,
    and the ``max_faces`` most suspicious are explained. Writes one PNG per face and method
    (heatmap over the face, jet, alpha 0.5), the face itself, and ``explanations.json``.

    Raises:
        UnknownNameError: an unknown method; NoFaceFoundError: no face in the input.
    """
    methods = check_methods(methods)
    path, out_dir = Path(path), Path(out_dir)
    if not methods:
        raise UnmaskError("Name at least one explanation method (--methods)")
    if max_faces < 1:
        raise UnmaskError(f"--max-faces must be at least 1, not {max_faces}")
    if not path.is_file():
        raise UnmaskError(f"No such file: {path}")
    model, meta = load_classifier(run_dir)
    ensure_out_dir(out_dir)  # a file, a read-only folder: one line now, not after the work
    faces = _faces(path, meta, is_crop=is_crop, num_frames=num_frames)
    scores, _ = explain_crops(model, meta, [c for _, _, c in faces], (), device=device)
    order = np.argsort(-scores, kind="stable")[:max_faces]
    chosen = [faces[i] for i in order]
    scores, results = explain_crops(model, meta, [c for _, _, c in chosen], methods, device=device)
    size = meta["size_px"]
    out_dir.mkdir(parents=True, exist_ok=True)
    explanations = []
    for i, (frame, track, crop) in enumerate(chosen):
        face = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        stem = f"{path.stem}_{frame.index:06d}_{track:02d}"
        _write_png(out_dir / f"{stem}_face.png", face)
        for method in methods:
            maps, faithful = results[method]
            name = f"{stem}_{method}.png"
            _write_png(out_dir / name, overlay_heatmap(face, maps[i]))
            explanations.append(Explanation(frame.index, frame.time_s, track, float(scores[i]), method, name,
                                            float(faithful[i])))
    with atomic_path(out_dir / "explanations.json") as tmp:
        tmp.write_text(json.dumps({"input": str(path), "run": str(run_dir), "threshold": meta.get("threshold"),
                                   "explanations": [asdict(e) for e in explanations]}, indent=1))
    return explanations


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # the temporary name keeps the .png suffix that cv2 needs
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")

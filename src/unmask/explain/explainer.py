"""Heatmaps of face crops with their faithfulness, and writing them as PNGs with an index."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from unmask.explain.cam import explain_batch
from unmask.explain.faithfulness import deletion_faithfulness
from unmask.explain.overlay import contact_sheet
from unmask.models import build_transform
from unmask.decision.record import CheckpointRecord
from unmask.decision.scoring import preprocess_crops, score_crops
from unmask.utils.device import default_device
from unmask.utils.atomic import atomic_path

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
    regions: dict | None = None  # the map's share in each face region (unmask.explain.regions)


def explain_crops(
    model, record: CheckpointRecord, crops: list[np.ndarray], methods, *, device=None, on_method=None
) -> tuple[np.ndarray, dict]:
    """Score face crops and explain them with each of ``methods``.

    Args:
        crops: ``(h, w, 3) uint8`` RGB face crops (any size: the run's preprocessing resizes).
        on_method: called with each method's name when its heatmaps are done.

    Returns:
        ``(p_fake (n,), {method: (heatmaps (n, S, S) in [0, 1], faithfulness (n,))})``.
    """
    device = default_device(device)
    model = model.to(device).eval()
    transform = build_transform(record.spec, record.size_px)
    scores = score_crops(model, crops, transform, record, device)
    x = preprocess_crops(crops, transform).to(device)
    out = {}
    for method in methods:
        maps = explain_batch(model, x, method)
        out[method] = (maps, deletion_faithfulness(model, x, maps))
        if on_method:
            on_method(method)
    return scores, out


def write_explanations(
    heatmaps,
    out_dir: str | Path,
    *,
    stem: str,
    index: dict,
    index_name: str = "explanations.json",
    threshold: float | None = None,
) -> list[Explanation]:
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
            faces[face_stem] = {
                "face": h.face,
                "label": f"frame {h.frame_index}, track {h.track_id}",
                "p_fake": h.p_fake,
                "overlays": {},
                "faithfulness": {},
            }
        faces[face_stem]["overlays"][h.method] = h.overlay
        faces[face_stem]["faithfulness"][h.method] = h.faithfulness
        name = f"{face_stem}_{h.method}.png"
        _write_png(out_dir / name, h.overlay)
        explanations.append(
            Explanation(
                h.frame_index,
                h.time_s,
                h.track_id,
                h.p_fake,
                h.method,
                name,
                h.faithfulness,
                getattr(h, "regions", None),
            )
        )
    sheet = None
    if faces:
        methods = list(dict.fromkeys(h.method for h in heatmaps))
        sheet = sheet_name(stem)
        _write_png(out_dir / sheet, contact_sheet(list(faces.values()), methods, title=stem, threshold=threshold))
    entries = [
        {**asdict(e), "faithfulness": e.faithfulness if np.isfinite(e.faithfulness) else None} for e in explanations
    ]
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

"""Does a model look at the face, or at what surrounds it? The shortcut check.

A crop holds more than the face: hair, background and, in some generated clips, an inset of the
source photo or a caption. A model can learn those marks instead of the forgery. Two figures
show it:

- the share of the heatmap's mass (evidence for "fake") that falls outside the face box, on the
  fakes: near 0 when the model looks at the face, near 1 when it looks elsewhere;
- the AUC when everything outside the face box is blanked (filled with one colour): a model that
  keys on the surroundings falls towards 0.5, one that keys on the face keeps its AUC.

The face box is the detector's box, carried into the crop through the square the crop was cut
from (both recorded in the manifest), so nothing is detected again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from unmask.data.crops import load_crop
from unmask.data.manifest import read_manifest, select_split
from unmask.errors import ManifestError
from unmask.evaluation.metrics import score_metrics
from unmask.faces.crop import CROP_BOX_COLUMNS

logger = logging.getLogger(__name__)

FACE_BOX_COLUMNS = ("x1", "y1", "x2", "y2")
# The ImageNet mean colour: blank pixels normalise to zero, the most neutral input to the model.
BLANK_RGB = (124, 116, 104)


def face_boxes_in_crops(rows: pd.DataFrame, side_px: int) -> np.ndarray:
    """``(n, 4)`` face boxes ``(x1, y1, x2, y2)`` in the pixels of square crops of side ``side_px``.

    Rows without the crop square (manifests written before it was recorded) give NaN.
    """
    if not set(CROP_BOX_COLUMNS) <= set(rows.columns):
        return np.full((len(rows), 4), np.nan)
    face = rows[list(FACE_BOX_COLUMNS)].to_numpy(dtype=np.float64)
    square = rows[list(CROP_BOX_COLUMNS)].to_numpy(dtype=np.float64)
    scale = side_px / (square[:, 2:3] - square[:, 0:1])
    origin = np.concatenate([square[:, :2], square[:, :2]], axis=1)
    return np.clip((face - origin) * scale, 0, side_px)


def _box_mask(box: np.ndarray, shape: tuple[int, int], box_side: float) -> np.ndarray:
    """Boolean mask of the pixels inside ``box`` (given for an image of side ``box_side``)."""
    h, w = shape
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64) * [w / box_side, h / box_side, w / box_side, h / box_side]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5  # pixel centres
    return (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)


def outside_share(heatmaps: np.ndarray, boxes: np.ndarray, box_side: float) -> np.ndarray:
    """The share of each heatmap's mass outside its face box.

    Args:
        heatmaps: ``(n, h, w)`` non-negative maps.
        boxes: ``(n, 4)`` face boxes in the pixels of an image of side ``box_side``.

    Returns:
        ``(n,)`` shares in [0, 1]; NaN for a flat map (it points nowhere) or an unknown box.
    """
    shares = np.full(len(heatmaps), np.nan)
    for i, (heat, box) in enumerate(zip(heatmaps, boxes)):
        heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float64)), 0, None)
        if not np.isfinite(box).all() or np.ptp(heat) <= 0 or heat.sum() <= 0:
            continue
        inside = _box_mask(box, heat.shape, box_side)
        shares[i] = float(heat[~inside].sum() / heat.sum())
    return shares


def blank_outside(images: list[np.ndarray], boxes: np.ndarray, box_side: float, fill=BLANK_RGB) -> list[np.ndarray]:
    """Copies of ``(h, w, 3) uint8`` crops with every pixel outside the face box set to ``fill``.

    A crop whose box is unknown is blanked whole: it carries no face to judge.
    """
    out = []
    for image, box in zip(images, boxes):
        blanked = np.empty_like(image)
        blanked[...] = np.asarray(fill, dtype=image.dtype)
        if np.isfinite(box).all():
            inside = _box_mask(box, image.shape[:2], box_side)
            blanked[inside] = image[inside]
        out.append(blanked)
    return out


def video_auc(labels, p_fake, videos) -> float:
    """AUC of the videos' mean ``p_fake`` (the default aggregation); NaN without both classes."""
    df = pd.DataFrame({"video": np.asarray(videos), "label": np.asarray(labels), "p": np.asarray(p_fake)})
    per_video = df.groupby("video", sort=False).agg(label=("label", "first"), p=("p", "mean"))
    return score_metrics(per_video["label"], per_video["p"])["auc"]


def shortcut_figures(
    images: list[np.ndarray],
    labels,
    videos,
    boxes: np.ndarray,
    box_side: float,
    score: Callable[[list[np.ndarray]], np.ndarray],
    heatmaps: Callable[[list[np.ndarray]], np.ndarray] | None = None,
) -> dict:
    """The shortcut check on crops whose answer is known.

    Args:
        images: ``(h, w, 3) uint8`` crops; labels: 1 fake, 0 real; videos: each crop's video.
        boxes: ``(n, 4)`` face boxes in the pixels of an image of side ``box_side``.
        score: ``p_fake`` of a list of crops (the model under test).
        heatmaps: ``(n, h, w)`` evidence-for-fake maps of a list of crops; None: no heatmap share.

    Returns:
        ``{"videos", "crops", "auc", "auc_blanked", "auc_drop", "outside_share",
        "outside_share_median", "maps"}``: video AUCs with the crops as they are and blanked
        outside the face, and the mean (and median) share of the fakes' heatmap mass outside it.
    """
    labels, videos = np.asarray(labels, dtype=int), np.asarray(videos)
    auc = video_auc(labels, score(images), videos)
    auc_blanked = video_auc(labels, score(blank_outside(images, boxes, box_side)), videos)
    figures = {
        "videos": int(len(np.unique(videos))),
        "crops": int(len(images)),
        "auc": auc,
        "auc_blanked": auc_blanked,
        "auc_drop": auc - auc_blanked,
        "outside_share": None,
        "outside_share_median": None,
        "maps": 0,
    }
    fakes = np.flatnonzero(labels == 1)
    if heatmaps is not None and len(fakes):
        maps = heatmaps([images[i] for i in fakes])
        side = maps.shape[-1]
        shares = outside_share(maps, boxes[fakes] * (side / box_side), side)
        finite = shares[np.isfinite(shares)]
        if len(finite):
            figures.update(
                outside_share=float(finite.mean()), outside_share_median=float(np.median(finite)), maps=int(len(finite))
            )
    return figures


def sample_crops(rows: pd.DataFrame, per_video: int) -> pd.DataFrame:
    """At most ``per_video`` crops of each video, evenly spread over its frames."""

    def pick(group: pd.DataFrame) -> pd.DataFrame:
        group = group.sort_values("frame_index")
        keep = np.unique(np.linspace(0, len(group) - 1, min(per_video, len(group))).round().astype(int))
        return group.iloc[keep]

    return pd.concat([pick(g) for _, g in rows.groupby("video_id", sort=True)], ignore_index=True)


def check_shortcuts(
    run_dir: str | Path,
    data_dir: str | Path,
    *,
    split: str = "test",
    protocol: str | None = None,
    per_video: int = 4,
    method: str = "gradcam",
    device: str | None = None,
    rows: pd.DataFrame | None = None,
) -> dict:
    """The shortcut check of a trained run on the ``split`` of a prepared folder.

    Args:
        split: ``train``, ``val``, ``test`` under ``protocol`` (default: the run's), or ``all``.
        per_video: crops per video (evenly spread): heatmaps cost a backward pass each.
        method: the heatmap (:data:`unmask.explain.cam.EXPLAINERS`).
        rows: the manifest rows to check instead of the split (e.g. one family's test videos).

    Returns:
        :func:`shortcut_figures`' dict, with ``method`` and ``per_video``.
    """
    import torch

    from unmask.decision.checkpoint import load_classifier
    from unmask.decision.scoring import preprocess_crops, score_crops
    from unmask.explain.cam import explain_batch
    from unmask.models import build_transform
    from unmask.utils.device import default_device

    model, record = load_classifier(run_dir)
    data_dir = Path(data_dir)
    if rows is None:
        manifest, _ = read_manifest(data_dir)
        rows = manifest if split == "all" else select_split(manifest, protocol or record.data["protocol"], split)
    if rows.empty:
        raise ManifestError(f"{data_dir} has no crops to check")
    rows = sample_crops(rows, per_video)
    images = [load_crop(data_dir / path) for path in rows["crop_path"]]
    side = images[0].shape[0]
    device = default_device(device)
    model = model.to(device).eval()
    transform = build_transform(record.spec, record.size_px)

    def score(crops):
        return score_crops(model, crops, transform, record, device)

    def maps(crops):
        return np.concatenate(
            [
                explain_batch(model, preprocess_crops(crops[i : i + 16], transform).to(device), method)
                for i in range(0, len(crops), 16)
            ]
        )

    with torch.inference_mode(False):
        figures = shortcut_figures(
            images, rows["label"], rows["video_id"], face_boxes_in_crops(rows, side), side, score, maps
        )
    return {**figures, "method": method, "per_video": per_video}

"""Link faces across sampled frames into tracks, so that a verdict can be given per person."""

from __future__ import annotations

from typing import Sequence

from unmask.faces.detectors import Detection


def iou(a, b) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes.

    Not torchvision's ``box_iou``: matching compares a few boxes at a time, one pair per call,
    where building tensors costs far more than this function, and prepare's worker processes
    would import torch for it alone.
    """
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def distance(a, b) -> float:
    """Centre distance over the mean box side: 0 for the same place, ~1 a face-width away."""
    side = ((a[2] - a[0]) + (a[3] - a[1]) + (b[2] - b[0]) + (b[3] - b[1])) / 4
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return (dx * dx + dy * dy) ** 0.5 / max(side, 1e-6)


def same_place(a, b, max_distance: float = 1.0) -> bool:
    """Whether boxes ``a`` and ``b`` could be one face in two sampled frames (centres at most
    ``max_distance`` mean face sides apart)."""
    return distance(a, b) <= max_distance


def assign_tracks(
    detections: Sequence[Sequence[Detection]], *, max_distance: float = 1.0, max_gap: int = 4
) -> list[list[int]]:
    """Give every detection a track id by greedy matching to the tracks' last boxes.

    Sampled frames can be a second apart, so boxes are matched by centre distance (in face
    widths) rather than IoU alone; a track survives ``max_gap`` frames without a face.

    Args:
        detections: per frame, that frame's detections.

    Returns:
        Per frame, one track id per detection (ids count from 0 in order of first appearance).
    """
    tracks: dict[int, tuple[tuple[float, ...], int]] = {}  # id -> (last box, frame number)
    out: list[list[int]] = []
    for t, frame_dets in enumerate(detections):
        alive = {k: v for k, v in tracks.items() if t - v[1] - 1 <= max_gap}  # frames missed in between
        pairs = sorted(
            (distance(d.box, box) - iou(d.box, box), i, k)
            for i, d in enumerate(frame_dets)
            for k, (box, _) in alive.items()
            if distance(d.box, box) <= max_distance
        )
        ids = [-1] * len(frame_dets)
        used = set()
        for _, i, k in pairs:
            if ids[i] == -1 and k not in used:
                ids[i] = k
                used.add(k)
        for i, d in enumerate(frame_dets):
            if ids[i] == -1:
                ids[i] = len(tracks)
            tracks[ids[i]] = (d.box, t)
        out.append(ids)
    return out

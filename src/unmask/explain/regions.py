"""Which part of the face carries a heatmap's evidence: eyes, nose, mouth, forehead, cheeks, jaw.

The regions are drawn from the face's five landmarks (MTCNN's: both eyes, the nose tip and both
mouth corners, :data:`unmask.faces.detectors.LANDMARK_NAMES`), in the face's own frame so that a
tilted or turned face gets tilted regions: the origin is between the eyes, one unit across is the
distance between the eyes, one unit down is the distance from the eyes to the mouth. In those
units (``x`` across, ``y`` down; the eyes at about ``y = 0``, the mouth at ``y = 1``):

- ``eyes``: an ellipse around each eye point, 0.32 across and 0.22 down (semi-axes);
- ``mouth``: an ellipse around the mouth corners, reaching 0.15 past each corner and 0.25 down;
- ``nose``: the band 0.22 either side of the nose point, from the eyes down to just below it;
- ``forehead``: above the eyes (up to 1.1 eye-mouth distances), as wide as the face;
- ``cheeks``: beside the nose and mouth, down to the bottom of the mouth;
- ``jaw``: below the mouth, down to 1.9 eye-mouth distances (chin and jaw line);
- ``outside``: the rest (hair, ears, neck, background).

Each pixel belongs to one region (in that order of precedence), so the shares of a map's mass
sum to 1. A region's share is the sum of the heatmap over its pixels divided by the map's total:
the part of the evidence for "fake" that lies there. A flat map points nowhere: no shares.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

REGIONS = ("eyes", "nose", "mouth", "forehead", "cheeks", "jaw")
ALL_REGIONS = (*REGIONS, "outside")

# the face's extent in its own units (see the module's docstring)
_HALF_WIDTH = 1.05  # half the face's width, in eye distances from the centre line
_TOP = -1.1  # top of the forehead, in eye-mouth distances above the eyes
_BOTTOM = 1.9  # bottom of the chin
_EYE = (0.32, 0.22)  # semi-axes of each eye's ellipse (across, down)
_MOUTH_PAST = 0.15  # the mouth's ellipse reaches this far past each corner (eye distances)
_MOUTH_DOWN = 0.25  # and this far above and below the corners' line (eye-mouth distances)
_NOSE_HALF = 0.22  # half the nose's width (eye distances)
_NOSE_BELOW = 0.12  # the nose reaches this far below the nose point (eye-mouth distances)


def landmarks_in_crop(
    landmarks: Sequence[float] | None, crop_box: Sequence[float] | None, side_px: int
) -> np.ndarray | None:
    """Frame-pixel landmarks mapped into a square crop.

    Args:
        landmarks: 10 floats, ``(x, y)`` of the five points in frame pixels, or None.
        crop_box: ``(x1, y1, x2, y2)`` the crop was cut from (frame pixels), or None.
        side_px: the crop's side in pixels.

    Returns:
        ``(5, 2) float64`` points in crop pixels, or None when either input is missing or not finite.
    """
    if landmarks is None or crop_box is None:
        return None
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    x1, y1, x2, y2 = map(float, crop_box)
    if not np.isfinite(points).all() or x2 <= x1 or y2 <= y1:
        return None
    return (points - [x1, y1]) * [side_px / (x2 - x1), side_px / (y2 - y1)]


def region_masks(points: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean masks of :data:`ALL_REGIONS` over an image of ``shape``.

    Args:
        points: ``(5, 2)`` landmarks (left eye, right eye, nose, left and right mouth corner) in
            the image's pixels, ``(x, y)``.
        shape: ``(height, width)``.

    Returns:
        One ``(height, width) bool`` mask per region; every pixel is in exactly one.
    """
    points = np.asarray(points, dtype=np.float64).reshape(5, 2)
    eye_a, eye_b, nose, mouth_a, mouth_b = points
    eyes_mid, mouth_mid = (eye_a + eye_b) / 2, (mouth_a + mouth_b) / 2
    across = eye_b - eye_a
    eye_dist = max(float(np.hypot(*across)), 1e-6)
    across = across / eye_dist
    down = np.array([-across[1], across[0]])  # across turned 90 degrees ...
    if (mouth_mid - eyes_mid) @ down < 0:  # ... the way that leads to the mouth, however the face is turned
        down = -down
    mouth_dist = float((mouth_mid - eyes_mid) @ down)
    if mouth_dist <= 1e-6:  # a degenerate detection (mouth level with the eyes): use the eye distance
        mouth_dist = eye_dist

    def frame(p):  # points into the face's units
        rel = np.asarray(p, dtype=np.float64) - eyes_mid
        return rel @ across / eye_dist, rel @ down / mouth_dist

    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64) + 0.5  # pixel centres
    u = ((xs - eyes_mid[0]) * across[0] + (ys - eyes_mid[1]) * across[1]) / eye_dist
    v = ((xs - eyes_mid[0]) * down[0] + (ys - eyes_mid[1]) * down[1]) / mouth_dist
    face = np.abs(u) <= _HALF_WIDTH

    eyes = np.zeros(shape, dtype=bool)
    for eye in (eye_a, eye_b):
        eu, ev = frame(eye)
        eyes |= ((u - eu) / _EYE[0]) ** 2 + ((v - ev) / _EYE[1]) ** 2 <= 1
    (mau, mav), (mbu, mbv) = frame(mouth_a), frame(mouth_b)
    mouth_u, mouth_v = (mau + mbu) / 2, (mav + mbv) / 2
    mouth_half = abs(mau - mbu) / 2 + _MOUTH_PAST
    mouth = ((u - mouth_u) / mouth_half) ** 2 + ((v - mouth_v) / _MOUTH_DOWN) ** 2 <= 1
    nose_u, nose_v = frame(nose)
    nose_mask = (np.abs(u - nose_u) <= _NOSE_HALF) & (v >= 0) & (v <= nose_v + _NOSE_BELOW)
    forehead = face & (v < 0) & (v >= _TOP)
    mouth_bottom = mouth_v + _MOUTH_DOWN
    cheeks = face & (v >= 0) & (v <= mouth_bottom)
    jaw = face & (v > mouth_bottom) & (v <= _BOTTOM)

    masks, taken = {}, np.zeros(shape, dtype=bool)
    for name, mask in (
        ("eyes", eyes),
        ("mouth", mouth),
        ("nose", nose_mask),
        ("forehead", forehead),
        ("cheeks", cheeks),
        ("jaw", jaw),
    ):
        masks[name] = mask & ~taken
        taken |= mask
    masks["outside"] = ~taken
    return {name: masks[name] for name in ALL_REGIONS}


def region_shares(
    heatmap: np.ndarray, points: np.ndarray | None, *, points_side_px: int | None = None
) -> dict[str, float] | None:
    """The share of ``heatmap``'s mass in each face region.

    Args:
        heatmap: ``(h, w)`` non-negative map (the model's evidence for fake, e.g. in [0, 1]).
        points: ``(5, 2)`` landmarks in the pixels of a square crop of side ``points_side_px``
            (default: the heatmap's own pixels); None: no landmarks.
        points_side_px: the side of the image the points were measured in; they are scaled to
            the heatmap's size.

    Returns:
        ``{region: share}`` over :data:`ALL_REGIONS`, summing to 1; None without landmarks or for a
        flat map (no evidence anywhere, or the same everywhere: it points nowhere).
    """
    if points is None:
        return None
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float64)), 0, None)
    if heat.size == 0 or np.ptp(heat) <= 0 or heat.sum() <= 0:
        return None
    h, w = heat.shape
    scale = np.array([w, h], dtype=np.float64) / points_side_px if points_side_px else np.ones(2)
    masks = region_masks(np.asarray(points, dtype=np.float64).reshape(5, 2) * scale, (h, w))
    total = heat.sum()
    return {name: round(float(heat[mask].sum() / total), 4) for name, mask in masks.items()}


def mean_shares(shares: Iterable[dict[str, float] | None]) -> dict[str, float] | None:
    """The mean of several faces' region shares (the faces without any left out); None if none."""
    rows = [s for s in shares if s]
    if not rows:
        return None
    return {name: round(float(np.mean([s.get(name, 0.0) for s in rows])), 4) for name in ALL_REGIONS}


def main_region(shares: dict[str, float] | None) -> str | None:
    """The face region (not ``outside``) holding the largest share, or None."""
    if not shares:
        return None
    return max(REGIONS, key=lambda name: shares.get(name, 0.0))

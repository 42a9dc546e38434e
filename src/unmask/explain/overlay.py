"""Heatmaps drawn over the face (jet colour map, alpha 0.5, as the paper)."""

from __future__ import annotations

import cv2
import numpy as np


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """Blend a jet-coloured ``heatmap`` (``(h, w)`` in [0, 1]) over ``image`` (``(H, W, 3) uint8`` RGB).

    The heatmap is resized to the image; returns ``(H, W, 3) uint8`` RGB. Not pytorch-grad-cam's
    ``show_cam_on_image``: it divides the blend by its own maximum, which brightens dark faces;
    the paper's overlay is a plain blend.
    """
    heat = cv2.resize(np.clip(heatmap, 0, 1).astype(np.float32), (image.shape[1], image.shape[0]))
    colour = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * heat), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return np.uint8(np.clip((1 - alpha) * image.astype(np.float32) + alpha * colour.astype(np.float32), 0, 255))

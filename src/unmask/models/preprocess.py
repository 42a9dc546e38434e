"""The model's preprocessing in numpy and Pillow, for runtimes without torch (an exported detector).

It computes what :func:`unmask.models.transforms.build_transform` computes: a resize to the
input side with the backbone's interpolation (antialiased: torchvision's antialiased resize is
built to match Pillow's; they differ by one or two levels of 255 on a few pixels), then scaling
to [0, 1] and normalising with the backbone's mean and std, in float32, in the same order.
A face crop cut at the model's input side (the usual case) is not resized at all, so the two
agree exactly there.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from unmask.errors import UnmaskError
from unmask.models.spec import BackboneSpec

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def resize_crop(image: np.ndarray, size_px: int, interpolation: str = "bicubic") -> np.ndarray:
    """``(S, S, 3) uint8``: an ``(h, w, 3) uint8`` RGB crop resized to ``size_px`` as the model's
    transform resizes it (unchanged when it already has that size)."""
    if image.shape[:2] == (size_px, size_px):
        return np.ascontiguousarray(image)
    if interpolation not in _RESAMPLING:
        raise UnmaskError(
            f"Unknown interpolation {interpolation!r} in the model's record; known: {', '.join(_RESAMPLING)}"
        )
    return np.asarray(Image.fromarray(image).resize((size_px, size_px), _RESAMPLING[interpolation]))


def normalise_batch(images: np.ndarray, mean, std) -> np.ndarray:
    """``(n, 3, S, S) float32``: ``(n, S, S, 3) uint8`` images scaled to [0, 1], minus ``mean``,
    over ``std`` (per channel)."""
    x = images.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def preprocess_crops(images, spec: BackboneSpec, size_px: int) -> np.ndarray:
    """``(n, 3, S, S) float32``: the model's input for ``(h, w, 3) uint8`` RGB face crops."""
    if not len(images):
        return np.zeros((0, 3, size_px, size_px), np.float32)
    resized = np.stack([resize_crop(np.asarray(image, np.uint8), size_px, spec.interpolation) for image in images])
    return normalise_batch(resized, spec.mean, spec.std)

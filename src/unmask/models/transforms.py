"""The one image preprocessing per model: training, evaluation, prediction and explanation all call it.

It has two halves so that training can keep the first half's output on disk (the crop cache)
and run the second on whole batches on the training device: :func:`build_resize` (crop ->
``uint8`` at the input size) and :func:`build_normalise` (``uint8`` -> normalised ``float32``,
for one image or a batch). :func:`build_transform` is the two in a row.
"""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from unmask.models.registry import BackboneSpec


def build_resize(spec: BackboneSpec, size_px: int | None = None) -> T.Compose:
    """Turn an ``(H, W, 3) uint8`` RGB array or PIL image into the ``(3, S, S) uint8`` image of ``spec``.

    Args:
        spec: the backbone; its interpolation is used.
        size_px: input side ``S``; default the backbone's own (the paper preset uses 224).
    """
    size_px = size_px or spec.default_size_px
    return T.Compose(
        [
            T.ToImage(),
            T.Resize((size_px, size_px), interpolation=InterpolationMode(spec.interpolation), antialias=True),
        ]
    )


def build_normalise(spec: BackboneSpec) -> T.Compose:
    """Turn ``(..., 3, S, S) uint8`` images (one or a batch, on any device) into ``float32``
    scaled to [0, 1] and normalised with the spec's mean and std."""
    return T.Compose([T.ToDtype(torch.float32, scale=True), T.Normalize(spec.mean, spec.std)])


def build_transform(spec: BackboneSpec, size_px: int | None = None) -> T.Compose:
    """Turn an ``(H, W, 3) uint8`` RGB array or PIL image into the ``(3, S, S) float32`` input of ``spec``.

    Args:
        spec: the backbone; its mean, std and interpolation are used.
        size_px: input side ``S``; default the backbone's own (the paper preset uses 224).
    """
    return T.Compose([*build_resize(spec, size_px).transforms, *build_normalise(spec).transforms])

"""The one image preprocessing per model: training, evaluation, prediction and explanation all call it."""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from unmask.models.registry import BackboneSpec


def build_transform(spec: BackboneSpec, size_px: int | None = None, *, augment: bool = False) -> T.Compose:
    """Turn an ``(H, W, 3) uint8`` RGB array or PIL image into the ``(3, S, S) float32`` input of ``spec``.

    Args:
        spec: the backbone; its mean, std and interpolation are used.
        size_px: input side ``S``; default the backbone's own (the paper preset uses 224).
        augment: add training augmentation before resizing: horizontal flip, colour jitter, JPEG
            re-compression (quality 30-95) and Gaussian blur, the degradations videos go through.
    """
    size_px = size_px or spec.default_size_px
    steps: list = [T.ToImage()]
    if augment:
        steps += [
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.2, 0.2, 0.2, 0.02)], p=0.5),
            T.RandomApply([T.JPEG((30, 95))], p=0.3),
            T.RandomApply([T.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.2),
        ]
    steps += [
        T.Resize((size_px, size_px), interpolation=InterpolationMode(spec.interpolation), antialias=True),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(spec.mean, spec.std),
    ]
    return T.Compose(steps)

"""The numpy preprocessing of exported detectors computes what the torch transform computes."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from unmask.models import BACKBONES, build_transform
from unmask.models.preprocess import preprocess_crops


def _crops(sizes, seed=0):
    """Smooth random crops (face-like: no pixel-level noise for a resize to alias)."""
    import cv2

    rng = np.random.default_rng(seed)
    return [cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0) for h, w in sizes]


@pytest.mark.parametrize("name", list(BACKBONES))
def test_crops_at_the_input_size_get_the_torch_transforms_numbers(name):
    spec = BACKBONES[name]
    crops = _crops([(64, 64)] * 3)
    want = torch.stack([build_transform(spec, 64)(c) for c in crops]).numpy()
    got = preprocess_crops(crops, spec, 64)
    assert got.dtype == np.float32 and got.shape == want.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # float32 rounding only


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("size_px", [48, 64, 224])
def test_a_resized_crop_is_within_two_levels_of_the_torch_transform(interpolation, size_px):
    spec = replace(BACKBONES["mobilenetv3_small"], interpolation=interpolation)
    crops = _crops([(150, 130), (64, 80), (31, 31)])
    want = torch.stack([build_transform(spec, size_px)(c) for c in crops]).numpy()
    got = preprocess_crops(crops, spec, size_px)
    two_levels = 2 / 255 / min(spec.std) + 1e-6  # rounding of the resized uint8 pixel (Pillow is fixed-point)
    diff = np.abs(got - want)
    assert diff.max() <= two_levels
    assert (diff > 1e-5).mean() < 0.02  # and only on a few pixels


def test_an_empty_batch_has_the_input_shape():
    assert preprocess_crops([], BACKBONES["mobilenetv3_small"], 64).shape == (0, 3, 64, 64)

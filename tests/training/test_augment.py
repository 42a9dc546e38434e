import cv2
import numpy as np
import pytest
import torch

from unmask.training.augment import (
    BatchAugment,
    _gaussian_kernels,
    colour_matrices,
    gaussian_blur,
    jpeg_compress,
    jpeg_tables,
)


def _portrait(size=128) -> np.ndarray:
    from unmask.demo import load_portraits

    image = next(iter(load_portraits().values()))
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def _psnr(a, b) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def test_jpeg_tables_are_libjpegs():
    tables = jpeg_tables(torch.tensor([50, 100, 30, 1, 13]))
    assert tables[0, 0, 0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61] and tables[0, 1, 7, 7] == 99  # Annex K at 50
    assert (tables[1] == 1).all()  # quality 100: no rounding beyond integers
    assert tables[2, 0, 0, 0] == 27 and tables[2, 1, 0, 0] == 28  # (16 * 166 + 50) // 100, (17 * 166 + 50) // 100
    assert (tables[3] == 255).all()  # quality 1: clipped to baseline's 255
    assert tables[4, 0, 0, 0] == 61  # 5000 // 13 = 384 in integers (62 with 5000 / 13 unrounded)


@pytest.mark.parametrize("quality", [30, 60, 95])
def test_batched_jpeg_is_close_to_libjpeg(quality):
    """Ours against OpenCV's libjpeg (4:2:0, same tables): much closer to it than the original is."""
    image = _portrait(116)  # not a multiple of 8: edge padding is exercised

    def libjpeg(q):
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    ours = jpeg_compress(torch.cat([x, x]), torch.tensor([quality, 100])).round().permute(0, 2, 3, 1).numpy()
    assert ours.shape == (2, 116, 116, 3)
    real = libjpeg(quality)
    assert _psnr(ours[0], real) > _psnr(image, real) + 6  # the same losses as libjpeg's, not merely some loss
    assert _psnr(ours[0], real) > 38
    assert _psnr(ours[1], libjpeg(100)) > 38  # each image at its own quality


def test_colour_maps():
    one, zero = torch.ones(2), torch.zeros(2)
    assert torch.allclose(colour_matrices(one, one, one, zero), torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    m = colour_matrices(one, one, torch.tensor([0.0, 1.5]), torch.tensor([0.02, -0.02]))
    grey = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)
    assert torch.allclose(m @ grey, grey.expand(2, 3), atol=1e-3)  # grey stays grey under saturation and hue
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(m[0] @ red, torch.full((3,), 0.2989, dtype=torch.float64), atol=1e-3)  # saturation 0
    assert torch.allclose(
        colour_matrices(torch.tensor([1.2]), one[:1], one[:1], zero[:1]), 1.2 * torch.eye(3, dtype=torch.float64)
    )


def test_blur_keeps_flat_images_and_mass():
    kernels = _gaussian_kernels(torch.tensor([0.1, 1.5]), 5)
    assert torch.allclose(kernels.sum(1), torch.ones(2)) and kernels[0, 2] > 0.99 and kernels[1, 2] < 0.3
    flat = torch.full((2, 3, 16, 16), 77.0)
    sigma = torch.tensor([0.1, 1.5])
    assert torch.allclose(gaussian_blur(flat, sigma), flat)
    dot = torch.zeros(2, 3, 16, 16)
    dot[:, :, 8, 8] = 100
    out = gaussian_blur(dot, sigma)
    assert torch.allclose(out.sum((2, 3)), torch.full((2, 3), 100.0)) and out[1, 0, 8, 8] < 30 < out[0, 0, 8, 8]


def test_batch_augmentation_is_seeded_and_changes_some_images():
    image = torch.from_numpy(_portrait(64)).permute(2, 0, 1)
    batch = image.expand(64, 3, 64, 64).contiguous()

    def run(seed):
        return BatchAugment(torch.Generator().manual_seed(seed))(batch)

    a, b, c = run(1), run(1), run(2)
    assert a.dtype == torch.uint8 and a.shape == batch.shape and torch.equal(batch[0], image)  # input untouched
    assert torch.equal(a, b) and not torch.equal(a, c)
    same = (a == batch).flatten(1).all(1)
    # P(untouched) = 0.5 * 0.5 * 0.7 * 0.8 = 0.14: some of 64 images, far from all
    assert 2 <= int(same.sum()) <= 24
    mirrored = (a == batch.flip(-1)).flatten(1).all(1)
    assert mirrored.any()


def test_channels_last_batches_on_the_cpu_hold_the_same_numbers():
    from unmask.models import get_spec
    from unmask.models.transforms import build_normalise
    from unmask.data.crops import DeviceBatches

    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    batches = [(x, torch.zeros(4, dtype=torch.long), torch.arange(4))]
    normalise = build_normalise(get_spec("mobilenetv3_small"))
    [(a, _, _)] = DeviceBatches(batches, torch.device("cpu"), normalise, channels_last=True)
    [(b, _, _)] = DeviceBatches(batches, torch.device("cpu"), normalise)
    assert a.is_contiguous(memory_format=torch.channels_last) and b.is_contiguous() and torch.equal(a, b)

"""Training augmentation on whole batches of ``uint8`` images, on the training device.

The degradations a face goes through on its way into a video, each drawn per image:

=========== ==== =====================================================================
step        p    what
=========== ==== =====================================================================
flip        0.5  horizontal mirror
colour      0.5  brightness, contrast, saturation in [0.8, 1.2]; hue turned by up to
                 +-0.02 of a full turn
JPEG        0.3  JPEG's lossy steps at a quality drawn from 30-95 (below)
blur        0.2  5x5 Gaussian blur, sigma in [0.1, 1.5], reflected edges
=========== ==== =====================================================================

They run after resizing (on the cached input-size images) rather than before, as torchvision's
per-image pipeline did, and differ from torchvision's per-image transforms in two documented
ways: the colour jitter composes its four changes into one affine colour map per image
(brightness, contrast, saturation, then hue as a rotation of the YIQ chroma plane, torchvision
shifts hue in HSV) and clips once at the end instead of after each change; and the JPEG step is
JPEG's lossy part done in tensors (JFIF YCbCr, 4:2:0 chroma averaged over 2x2 and brought back by
the triangle filter libjpeg's "fancy upsampling" uses, 8x8 DCT, rounding by the standard's
Annex K tables scaled for the quality as libjpeg scales them) without the entropy coding, which
is lossless. It stays close to libjpeg (tested against OpenCV's encoder), not byte-identical:
libjpeg's integer DCT rounds otherwise.

All random numbers come from a CPU generator that the caller seeds (per epoch and rank), so the
same seed gives the same augmentation on any device, a resumed run repeats it, and a GPU never
waits for the host to look at its numbers.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

P_FLIP, P_COLOUR, P_JPEG, P_BLUR = 0.5, 0.5, 0.3, 0.2
JITTER = 0.2  # brightness, contrast and saturation factors in [1 - JITTER, 1 + JITTER]
HUE = 0.02  # hue turned by up to this share of a full turn
JPEG_QUALITY = (30, 95)
BLUR_SIGMA = (0.1, 1.5)
BLUR_SIZE = 5
GREY = (0.2989, 0.587, 0.114)  # torchvision's grayscale weights

# ITU-T T.81 Annex K.1: the example quantisation tables every libjpeg build uses for quality 50.
_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
         14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
         49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
           47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)


def jpeg_tables(quality: torch.Tensor) -> torch.Tensor:
    """``(n, 2, 8, 8) float32`` luma and chroma quantisation tables for integer qualities ``(n,)`` in 1-100.

    Scaled as libjpeg does: ``5000 / q`` percent below 50, ``200 - 2 q`` from 50 on, rounded,
    kept within 1-255.
    """
    q = quality.to(torch.float64).clamp(1, 100)
    scale = torch.where(q < 50, torch.floor(5000 / q), 200 - 2 * q)[:, None, None, None]
    base = torch.tensor([_LUMA, _CHROMA], dtype=torch.float64).view(1, 2, 8, 8)
    return torch.floor((base * scale + 50) / 100).clamp(1, 255).to(torch.float32)


def _dct_matrix(device) -> torch.Tensor:
    """The orthonormal 8-point DCT-II matrix ``D`` (JPEG's 2-D DCT of a block ``B`` is ``D B D^T``)."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(device, torch.float32)


def _to_blocks(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, c, h // 8, 8, w // 8, 8).transpose(3, 4)  # (n, c, h/8, w/8, 8, 8)


def _from_blocks(b: torch.Tensor) -> torch.Tensor:
    n, c, bh, bw = b.shape[:4]
    return b.transpose(3, 4).reshape(n, c, bh * 8, bw * 8)


def jpeg_compress(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG's lossy steps on ``(n, 3, H, W) float32`` RGB in [0, 255] with qualities ``(n,)``; returns the
    decoded images, same shape, in [0, 255] (not rounded)."""
    n, _, h, w = x.shape
    pad_h, pad_w = -h % 16, -w % 16  # whole 16x16 units for 4:2:0; libjpeg repeats the edge pixels
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    r, g, b = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)
    d = _dct_matrix(x.device)
    tables = jpeg_tables(quality).to(x.device)
    planes = []
    for plane, table in ((y[:, None], tables[:, :1]), (chroma, tables[:, 1:])):
        coef = d @ _to_blocks(plane - 128) @ d.T
        q = table[:, :, None, None]  # (n, 1, 1, 1, 8, 8)
        planes.append(_from_blocks(d.T @ (torch.round(coef / q) * q) @ d) + 128)
    y, chroma = planes[0][:, 0], planes[1]
    cb, cr = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False).unbind(1)
    out = torch.stack([y + 1.402 * (cr - 128),
                       y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                       y + 1.772 * (cb - 128)], 1)
    return out[:, :, :h, :w].clamp(0, 255)


def colour_matrices(brightness, contrast, saturation, hue) -> torch.Tensor:
    """``(n, 3, 3)`` colour maps for per-image factors ``(n,)``: ``x -> c*b * H S x`` (the
    contrast's pull toward the mean grey is added apart, as it depends on the image)."""
    n = brightness.shape[0]
    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    grey = torch.tensor(GREY, dtype=torch.float64)
    s = saturation.double()[:, None, None]
    sat = s * eye + (1 - s) * grey.expand(n, 3, 3)  # every row of `grey.expand` is the weights: mixes toward grey
    angle = hue.double() * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(n, 3, 3, dtype=torch.float64)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    turn = torch.linalg.inv(_YIQ) @ rot @ _YIQ
    return (turn @ sat) * (brightness * contrast).double()[:, None, None]


def _gaussian_kernels(sigma: torch.Tensor, size: int) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-0.5 * (r[None, :] / sigma[:, None].float()) ** 2)
    return k / k.sum(1, keepdim=True)  # (n, size)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


class BatchAugment:
    """Flip, colour jitter, JPEG and blur for ``(N, 3, H, W) uint8`` batches on any device.

    Args:
        generator: a CPU :class:`torch.Generator`; seed it (per epoch, per rank) to repeat a run.
    """

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def _draw(self, n: int, p: float) -> torch.Tensor:
        return torch.nonzero(torch.rand(n, generator=self.generator) < p).flatten()

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=self.generator)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Augment ``x`` (``(N, 3, H, W) uint8``); returns a new batch of the same shape, dtype and device."""
        n, device = x.shape[0], x.device
        flip = torch.rand(n, generator=self.generator) < P_FLIP
        x = torch.where(flip.to(device)[:, None, None, None], x.flip(-1), x)

        pick = self._draw(n, P_COLOUR)
        if len(pick):
            k = len(pick)
            b, c, s = (self._uniform(k, 1 - JITTER, 1 + JITTER) for _ in range(3))
            matrices = colour_matrices(b, c, s, self._uniform(k, -HUE, HUE))
            offset = ((1 - c) * b).double()  # contrast pulls toward the (brightened) mean grey
            x = self._apply(x, pick, lambda sub: self._colour(sub, matrices, offset))

        pick = self._draw(n, P_JPEG)
        if len(pick):
            quality = torch.randint(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, (len(pick),), generator=self.generator)
            x = self._apply(x, pick, lambda sub: jpeg_compress(sub, quality))

        pick = self._draw(n, P_BLUR)
        if len(pick):
            kernels = _gaussian_kernels(self._uniform(len(pick), *BLUR_SIGMA), BLUR_SIZE)
            x = self._apply(x, pick, lambda sub: self._blur(sub, kernels))
        return x

    @staticmethod
    def _apply(x: torch.Tensor, pick: torch.Tensor, fn) -> torch.Tensor:
        index = pick.to(x.device)
        out = _to_uint8(fn(x.index_select(0, index).float()))
        return x.index_copy(0, index, out)

    @staticmethod
    def _colour(x: torch.Tensor, matrices: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        grey = torch.tensor(GREY, device=x.device)
        mean = torch.einsum("c,nchw->n", grey, x) / (x.shape[2] * x.shape[3])  # mean grey of each image
        shift = (offset.to(x.device, torch.float32) * mean)[:, None]  # (k, 1): added to every channel
        # (hue and saturation keep grey grey: M applied to a grey pixel is the pixel, so the shift
        # can be added after the colour map)
        out = torch.einsum("nij,njhw->nihw", matrices.to(x.device, torch.float32), x)
        return out.add_(shift[:, :, None, None]).clamp_(0, 255)

    @staticmethod
    def _blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        k, c, h, w = x.shape
        half = BLUR_SIZE // 2
        weight = kernels.to(x.device).repeat_interleave(c, 0)  # (k*c, size): one kernel per image channel
        planes = F.pad(x.reshape(1, k * c, h, w), (half, half, half, half), mode="reflect")
        planes = F.conv2d(planes, weight[:, None, :, None], groups=k * c)
        planes = F.conv2d(planes, weight[:, None, None, :], groups=k * c)
        return planes.view(k, c, h, w)

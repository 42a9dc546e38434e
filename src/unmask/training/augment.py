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
_LUMA = [
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
]
_CHROMA = [
    17,
    18,
    24,
    47,
    99,
    99,
    99,
    99,
    18,
    21,
    26,
    66,
    99,
    99,
    99,
    99,
    24,
    26,
    56,
    99,
    99,
    99,
    99,
    99,
    47,
    66,
    99,
    99,
    99,
    99,
    99,
    99,
] + [99] * 32
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


def _dct_matrix() -> torch.Tensor:
    """The orthonormal 8-point DCT-II matrix ``D`` (JPEG's 2-D DCT of a block ``B`` is ``D B D^T``)."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d


# JPEG's 2-D DCT of a block flattened row by row is one 64x64 matrix: one large matrix product
# for all blocks of a batch, much faster than many 8x8 ones.
_DCT64 = torch.kron(_dct_matrix(), _dct_matrix()).float()
_RGB_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC_TO_RGB = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])


def _block_dct_round_trip(plane: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """Quantise the 8x8-block DCT of ``(n, c, H, W)`` planes with ``(n, 64)`` tables and transform back."""
    n, c, h, w = plane.shape
    blocks = plane.reshape(n, c, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(n, -1, 64)
    dct = _DCT64.to(plane.device)
    coef = blocks @ dct.T
    q = tables[:, None, :]
    coef.div_(q).round_().mul_(q)
    return (coef @ dct).view(n, c, h // 8, w // 8, 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


def _halve(x: torch.Tensor) -> torch.Tensor:
    """Average 2x2 pixels (libjpeg's 4:2:0 downsampling)."""
    return (x[..., ::2, ::2] + x[..., 1::2, ::2] + x[..., ::2, 1::2] + x[..., 1::2, 1::2]) * 0.25


def _double(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Upsample ``dim`` by 2 with the triangle filter (3/4 nearest, 1/4 next; edges repeated), as
    libjpeg's "fancy upsampling" and bilinear interpolation at half-pixel centres do."""
    n = x.shape[dim]
    before = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)
    after = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
    even, odd = 0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after
    return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)


def jpeg_compress(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG's lossy steps on ``(n, 3, H, W) float32`` RGB in [0, 255] with qualities ``(n,)``; returns the
    decoded images, same shape, in [0, 255] (not rounded)."""
    n, _, h, w = x.shape
    pad_h, pad_w = -h % 16, -w % 16  # whole 16x16 units for 4:2:0; libjpeg repeats the edge pixels
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    h16, w16 = x.shape[2:]
    ycc = torch.matmul(_RGB_TO_YCC.to(x.device), x.reshape(n, 3, -1)).view(
        n, 3, h16, w16
    )  # JFIF YCbCr, Cb and Cr centred on 0
    ycc[:, 0] -= 128  # JPEG's level shift
    tables = jpeg_tables(quality).to(x.device).view(n, 2, 64)
    luma = _block_dct_round_trip(ycc[:, :1], tables[:, 0])
    chroma = _block_dct_round_trip(_halve(ycc[:, 1:]), tables[:, 1])
    ycc = torch.cat([luma + 128, _double(_double(chroma, 2), 3)], 1)
    rgb = torch.matmul(_YCC_TO_RGB.to(x.device), ycc.view(n, 3, -1)).view(n, 3, h16, w16)
    return rgb[:, :, :h, :w].clamp_(0, 255)


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


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, size: int = BLUR_SIZE) -> torch.Tensor:
    """Blur each image of ``(k, c, H, W) float`` by its own ``sigma`` (pixels), ``size`` taps, reflected edges."""
    k, c, h, w = x.shape
    half = size // 2
    weight = _gaussian_kernels(sigma, size).to(x.device).repeat_interleave(c, 0)  # (k*c, size): one kernel per channel
    planes = F.pad(x.reshape(1, k * c, h, w), (half, half, half, half), mode="reflect")
    planes = F.conv2d(planes, weight[:, None, :, None], groups=k * c)
    planes = F.conv2d(planes, weight[:, None, None, :], groups=k * c)
    return planes.view(k, c, h, w)


# Images picked by row, one copy each: on a CPU index_select/index_copy_ on uint8 images cost
# 10-50 times more than copying the rows one by one.
def _take(x: torch.Tensor, rows: list[int]) -> torch.Tensor:
    return torch.stack([x[i] for i in rows])


def _put(x: torch.Tensor, rows: list[int], values: torch.Tensor) -> None:
    for j, i in enumerate(rows):
        x[i].copy_(values[j])


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


class BatchAugment:
    """Flip, colour jitter, JPEG and blur for ``(N, 3, H, W) uint8`` batches on any device.

    Args:
        generator: a CPU :class:`torch.Generator`; seed it (per epoch, per rank) to repeat a run.
    """

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def _draw(self, n: int, p: float) -> list[int]:
        return torch.nonzero(torch.rand(n, generator=self.generator) < p).flatten().tolist()

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=self.generator)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Augment ``x`` (``(N, 3, H, W) uint8``); returns a new batch of the same shape, dtype and device."""
        n = x.shape[0]
        x = x.clone()  # the one copy; each step below rewrites only its own images in place
        pick = self._draw(n, P_FLIP)
        if pick:
            _put(x, pick, _take(x, pick).flip(-1))

        pick = self._draw(n, P_COLOUR)
        if pick:
            k = len(pick)
            b, c, s = (self._uniform(k, 1 - JITTER, 1 + JITTER) for _ in range(3))
            matrices = colour_matrices(b, c, s, self._uniform(k, -HUE, HUE))
            offset = ((1 - c) * b).double()  # contrast pulls toward the (brightened) mean grey
            self._apply(x, pick, lambda sub: self._colour(sub, matrices, offset))

        pick = self._draw(n, P_JPEG)
        if pick:
            quality = torch.randint(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, (len(pick),), generator=self.generator)
            self._apply(x, pick, lambda sub: jpeg_compress(sub, quality))

        pick = self._draw(n, P_BLUR)
        if pick:
            sigma = self._uniform(len(pick), *BLUR_SIGMA)
            self._apply(x, pick, lambda sub: gaussian_blur(sub, sigma))
        return x

    @staticmethod
    def _apply(x: torch.Tensor, pick: list[int], fn) -> None:
        _put(x, pick, _to_uint8(fn(_take(x, pick).float())))

    @staticmethod
    def _colour(x: torch.Tensor, matrices: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        grey = torch.tensor(GREY, device=x.device)
        mean = torch.einsum("c,nchw->n", grey, x) / (x.shape[2] * x.shape[3])  # mean grey of each image
        shift = (offset.to(x.device, torch.float32) * mean)[:, None]  # (k, 1): added to every channel
        # (hue and saturation keep grey grey: M applied to a grey pixel is the pixel, so the shift
        # can be added after the colour map)
        k, c, h, w = x.shape
        out = torch.matmul(matrices.to(x.device, torch.float32), x.view(k, c, h * w)).view(k, c, h, w)
        return out.add_(shift[:, :, None, None]).clamp_(0, 255)

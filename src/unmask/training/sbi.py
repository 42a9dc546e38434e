"""Self-blended images (Shiohara and Yamasaki, CVPR 2022): pseudo-fakes made from real faces.

A real face is blended onto itself. A copy of it (the *source*), changed in colour and
sharpness and moved and scaled a little, is laid over the untouched face (the *target*) through a
soft mask around the inner face. What is left is what every face swap leaves behind: a blending
boundary, a colour and frequency mismatch between the inner face and its surroundings, a slight
misalignment. There is no identity change and no trace of one generator, so a detector trained
on these learns the boundary, which carries over to manipulation methods it never saw; and it
can be trained on real videos alone.

Our implementation follows the paper's recipe with the five landmarks MTCNN gives instead of
81 (no packaged landmark model ships 81-point weights we could use offline): the inner face is an
ellipse placed by the eyes and the mouth (or by the detection box where there are no landmarks),
its edge deformed by a few random low-frequency harmonics, softened over a band of random width
(a smoothstep, where the paper blurs with a Gaussian: alike, and ten times cheaper) and scaled
by a random blend ratio. Everything runs on whole ``uint8`` batches, with a CPU generator the
caller seeds (a resumed run repeats it): in training, in the loader's workers, batch by batch
(:class:`BlendedCrops`).

The blend changes the face only where the mask is above zero: outside it the pseudo-fake is the
real crop, bit for bit (tested).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from unmask.data.crops import TensorCrops, all_images, read_batch
from unmask.faces.crop import CROP_BOX_COLUMNS, DEFAULT_MARGIN
from unmask.faces.detectors import LANDMARK_COLUMNS
from unmask.training.augment import colour_matrices, gaussian_blur

SYNTHESIZERS = ("none", "sbi")
SBI_METHOD = "SBI"  # the method name of self-blended fakes (validation rows, reports)

# Source changes (each drawn per image).
RGB_SHIFT = 20.0  # per-channel shift in grey levels, +-
COLOUR = (0.9, 1.1)  # brightness and contrast factors
SATURATION = (0.8, 1.2)
HUE = 0.03  # share of a full turn, +-
P_BLUR, P_SHARPEN = 0.35, 0.35  # frequency change: blur by resampling, or unsharp masking (else none)
RESAMPLE = (0.35, 0.8)  # blur: down to this share of the side and back
SHARPEN = (0.3, 1.2)  # unsharp-mask amount
SHIFT = 0.03  # source moved by up to this share of the side, +-
SCALE = (0.95, 1.05)  # and scaled by this, per axis
# Mask.
AXES = (0.85, 1.15)  # the ellipse's axes scaled by this, per axis
HARMONICS = (2, 3, 4)  # the edge's radius is 1 + sum of these harmonics
HARMONIC_AMPLITUDE = 0.05
EDGE = (0.04, 0.16)  # width of the mask's soft edge, as a share of the side
MASK_STEP = 4
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # the paper's: mostly a full blend

# Where the inner face lies relative to the five landmarks (eyes E, mouth M): measured on faces
# of the FF++ samples, the inner face (brows to chin, cheek to cheek) fills an ellipse centred a
# little above the midpoint of E and M, with a vertical half-axis of 1.25 |EM| and a horizontal
# one of 1.05 times the eye distance.
CENTRE_UP, HALF_HEIGHT, HALF_WIDTH = 0.1, 1.25, 1.05
BOX_HALF_HEIGHT, BOX_HALF_WIDTH = 0.45, 0.42  # without landmarks: shares of the detection box


def face_ellipses(rows: pd.DataFrame, size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The inner-face ellipse of each crop, in the pixels of a ``size`` x ``size`` crop.

    Args:
        rows: manifest rows: the detection box (``x1`` ... ``y2``), the landmarks and the crop's
            square (``crop_x1`` ...) where present (NaN or absent: see below).
        size: the side of the images the ellipses are for (the model's input).
        margin: the crop margin the data were prepared with; used only to rebuild the crop's
            square of manifests that did not record it (centred on the box, as away from the
            frame's edge).

    Returns:
        ``(n, 5) float32``: centre x, centre y, horizontal and vertical half-axes, roll (radians).
    """
    n = len(rows)
    box = rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    if set(CROP_BOX_COLUMNS) <= set(rows.columns):
        square = rows[list(CROP_BOX_COLUMNS)].to_numpy(np.float64)
    else:
        square = np.full((n, 4), np.nan)
    missing = np.isnan(square).any(1)
    if missing.any():
        side = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]) * margin
        cx, cy = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
        rebuilt = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1)
        square[missing] = rebuilt[missing]
    scale = size / (square[:, 2] - square[:, 0])

    def to_crop(x, y):
        return (x - square[:, 0]) * scale, (y - square[:, 1]) * scale

    bx1, by1 = to_crop(box[:, 0], box[:, 1])
    bx2, by2 = to_crop(box[:, 2], box[:, 3])
    out = np.stack(
        [(bx1 + bx2) / 2, (by1 + by2) / 2, BOX_HALF_WIDTH * (bx2 - bx1), BOX_HALF_HEIGHT * (by2 - by1), np.zeros(n)], 1
    )
    if set(LANDMARK_COLUMNS) <= set(rows.columns):
        points = rows[list(LANDMARK_COLUMNS)].to_numpy(np.float64).reshape(n, 5, 2)
        xs, ys = to_crop(points[..., 0].T, points[..., 1].T)  # (5, n) each
        left_eye, right_eye = np.stack([xs[0], ys[0]], 1), np.stack([xs[1], ys[1]], 1)
        mouth = (np.stack([xs[3], ys[3]], 1) + np.stack([xs[4], ys[4]], 1)) / 2
        eyes = (left_eye + right_eye) / 2
        centre = (eyes + mouth) / 2 + CENTRE_UP * (eyes - mouth)
        eye_mouth = np.linalg.norm(mouth - eyes, axis=1)
        eye_gap = np.linalg.norm(right_eye - left_eye, axis=1)
        across = right_eye - left_eye
        across *= np.where(across[:, :1] < 0, -1.0, 1.0)  # whichever eye a detector names first
        roll = np.arctan2(across[:, 1], across[:, 0])  # the eye line's tilt, in (-pi/2, pi/2]
        from_points = np.stack([centre[:, 0], centre[:, 1], HALF_WIDTH * eye_gap, HALF_HEIGHT * eye_mouth, roll], 1)
        good = np.isfinite(from_points).all(1) & (eye_mouth > 1) & (eye_gap > 1)
        out[good] = from_points[good]
    return out.astype(np.float32)


class SelfBlend:
    """Self-blended pseudo-fakes of ``(n, 3, S, S) uint8`` real crops.

    Args:
        generator: a CPU :class:`torch.Generator`; seed it to repeat a run.
    """

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def _uniform(self, n: int, low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=self.generator)

    def masks(self, ellipses: torch.Tensor, size: int) -> torch.Tensor:
        """``(n, 1, S, S) float32`` soft masks in [0, 1] around the ``(n, 5)`` ellipses (CPU)."""
        n = ellipses.shape[0]
        e = ellipses.float().clone()
        e[:, 2:4] *= self._uniform(n, *AXES, 2)
        # The mask is smooth: drawn on a grid MASK_STEP times coarser and upsampled bilinearly
        # (zeros stay exactly zero), at a sixteenth of the cost.
        grid = -(-size // MASK_STEP)
        coords = (torch.arange(grid, dtype=torch.float32) + 0.5) * (size / grid)
        dx = coords[None, None, :] - e[:, 0, None, None]
        dy = coords[None, :, None] - e[:, 1, None, None]
        cos, sin = torch.cos(e[:, 4])[:, None, None], torch.sin(e[:, 4])[:, None, None]
        u = (dx * cos + dy * sin) / e[:, 2, None, None].clamp(min=1.0)  # along the eye line
        v = (-dx * sin + dy * cos) / e[:, 3, None, None].clamp(min=1.0)  # eyes to mouth
        rho, theta = torch.sqrt(u * u + v * v), torch.atan2(v, u)
        radius = torch.ones_like(rho)
        for k in HARMONICS:
            a, b = (self._uniform(n, -HARMONIC_AMPLITUDE, HARMONIC_AMPLITUDE)[:, None, None] for _ in range(2))
            radius = radius + a * torch.cos(k * theta) + b * torch.sin(k * theta)
        # A soft edge across a band of EDGE widths of the side (in rho's units: over the half-axis),
        # shaped by smoothstep: like a blurred hard mask, but zero exactly beyond the band and
        # computed directly (a Gaussian blur as wide costs ten times more on a CPU).
        width = (self._uniform(n, *EDGE) * size)[:, None, None] / e[:, 2:4].mean(1).clamp(min=1.0)[:, None, None]
        t = ((radius - rho) / width + 0.5).clamp_(0, 1)
        soft = t * t * (3 - 2 * t)
        ratio = torch.tensor(BLEND_RATIOS)[torch.randint(len(BLEND_RATIOS), (n,), generator=self.generator)]
        soft = (soft * ratio[:, None, None])[:, None]
        return F.interpolate(soft, size=(size, size), mode="bilinear", align_corners=False) if grid != size else soft

    def source(self, x: torch.Tensor) -> torch.Tensor:
        """The changed copy of ``(n, 3, S, S) float32`` faces in [0, 255]: colour, frequency, place."""
        n, _, size, _ = x.shape
        device = x.device
        b, c = self._uniform(n, *COLOUR), self._uniform(n, *COLOUR)
        matrices = colour_matrices(b, c, self._uniform(n, *SATURATION), self._uniform(n, -HUE, HUE)).to(
            device, torch.float32
        )
        shift = self._uniform(n, -RGB_SHIFT, RGB_SHIFT, 3).to(device)
        out = torch.matmul(matrices, x.reshape(n, 3, -1)).view_as(x) + shift[:, :, None, None]
        draw = torch.rand(n, generator=self.generator)
        blur, sharpen = draw < P_BLUR, (draw >= P_BLUR) & (draw < P_BLUR + P_SHARPEN)
        share, amounts = float(self._uniform(1, *RESAMPLE)), self._uniform(n, *SHARPEN)
        picked = torch.nonzero(blur).flatten().tolist()
        if picked:  # one resampling share per batch: one call for all its images
            small = max(4, int(round(size * share)))
            out[picked] = F.interpolate(
                F.interpolate(out[picked], size=small, mode="bilinear", antialias=True), size=size, mode="bilinear"
            )
        picked = torch.nonzero(sharpen).flatten().tolist()
        if picked:
            sub = out[picked]
            smooth = gaussian_blur(sub, torch.full((len(picked),), 1.0))  # augmentation's blur
            out[picked] = sub + amounts[picked].to(device)[:, None, None, None] * (sub - smooth)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = 1 / self._uniform(n, *SCALE), 1 / self._uniform(n, *SCALE)
        theta[:, :, 2] = self._uniform(n, -2 * SHIFT, 2 * SHIFT, 2)  # grid units: the side is 2
        grid = F.affine_grid(theta.to(device), list(x.shape), align_corners=False)
        return F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False).clamp_(0, 255)

    def __call__(self, x: torch.Tensor, ellipses: torch.Tensor, *, return_masks: bool = False):
        """Pseudo-fakes of the real crops ``x`` (``(n, 3, S, S) uint8``, on any device).

        Args:
            ellipses: ``(n, 5)`` inner-face ellipses in ``x``'s pixels (:func:`face_ellipses`).
            return_masks: also return the ``(n, 1, S, S)`` blend masks.
        """
        if x.shape[0] == 0:
            return (x, x[:, :1].float()) if return_masks else x
        target = x.float()
        masks = self.masks(ellipses.cpu(), x.shape[-1]).to(x.device)
        blended = target + masks * (self.source(target) - target)  # == target exactly where the mask is 0
        out = blended.round_().clamp_(0, 255).to(torch.uint8)
        return (out, masks) if return_masks else out


class SelfBlendTwins:
    """Adds a self-blended twin (label fake) of each real crop of a batch with probability ``ratio``.

    Args:
        ellipses: ``(N, 5)`` ellipses of every crop of the dataset the batches come from, by position.
        ratio: the probability, per epoch, that a real crop also appears as its pseudo-fake.
        generator: seeded by the caller (per batch, or per epoch and rank).
    """

    def __init__(self, ellipses: np.ndarray, ratio: float, generator: torch.Generator):
        self.ellipses = torch.as_tensor(ellipses)
        self.ratio = ratio
        self.blend = SelfBlend(generator)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, positions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(images, labels, positions)`` with the twins after the batch's own crops, each twin
        at the position of the real it was made from."""
        positions = torch.as_tensor(positions, dtype=torch.int64)
        real = torch.nonzero(y.cpu() == 0).flatten()
        keep = torch.rand(len(real), generator=self.blend.generator) < self.ratio
        real = real[keep]
        if not len(real):
            return x, y, positions
        twins = self.blend(x[real.to(x.device)], self.ellipses[positions[real]])
        return (
            torch.cat([x, twins]),
            torch.cat([y, torch.ones(len(real), dtype=y.dtype, device=y.device)]),
            torch.cat([positions, positions[real]]),
        )


class BlendedCrops(Dataset):
    """A training set of ``uint8`` crops whose batches bring their self-blended twins.

    The twins are made where the batch is read: in the loader's worker processes, off the
    training step's path (in process with no workers). Each batch is asked for as ``(seed,
    positions)`` (:func:`unmask.data.crops.batch_loader` with ``seeds``) and blended with a
    generator of that seed, so a seeded run makes the same twins with any number of workers.

    Args:
        dataset: the crops (``(image, label, position)`` items, or whole batches: the crop cache).
        ellipses: ``(N, 5)`` inner-face ellipses of its crops (:func:`face_ellipses`).
        ratio: the probability that a real crop also appears as its twin.
    """

    reads_batches = True

    def __init__(self, dataset: Dataset, ellipses: np.ndarray, ratio: float):
        self.dataset, self.ellipses, self.ratio = dataset, torch.as_tensor(ellipses), ratio
        self.labels = dataset.labels

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        seed, positions = item
        x, y, positions = read_batch(self.dataset, positions)
        return SelfBlendTwins(self.ellipses, self.ratio, torch.Generator().manual_seed(seed))(x, y, positions)


def with_blended_twins(dataset, rows: pd.DataFrame, *, margin: float = DEFAULT_MARGIN, seed: int = 0):
    """A validation set with a fixed self-blended twin (label fake) of each real crop.

    For a validation split with no fakes (training on real videos only): the checkpoint is then
    chosen, and calibrated, on how well the model tells reals from their self-blended twins. The
    twins are made once, with ``seed``, so every epoch is judged on the same images; they are
    held in memory with the split's images (150 KB a crop at 224 px).

    Returns:
        ``(dataset, rows)``: the crops then their twins; the twins' rows are their reals' with
        ``label`` 1, ``method`` ``SBI`` and ``#sbi`` after the ``video_id`` (a video of its own).
    """
    images = all_images(dataset)
    labels = rows["label"].to_numpy(dtype=np.int64)
    real = np.flatnonzero(labels == 0)
    twins = SelfBlend(torch.Generator().manual_seed(seed))(
        images[real], torch.as_tensor(face_ellipses(rows.iloc[real], images.shape[-1], margin))
    )
    twin_rows = rows.iloc[real].copy()
    twin_rows["video_id"] = twin_rows["video_id"].astype(str) + "#sbi"
    twin_rows["label"], twin_rows["method"] = 1, SBI_METHOD
    return (
        TensorCrops(torch.cat([images, twins]), np.concatenate([labels, np.ones(len(real), dtype=np.int64)])),
        pd.concat([rows, twin_rows], ignore_index=True),
    )

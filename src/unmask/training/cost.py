"""Cost-sensitive learning: class weights and the losses that use them.

Labels: 0 real, 1 fake; weights and logits are indexed the same way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from unmask.errors import ManifestError, SettingError, unknown_name

CLASS_WEIGHTS = ("balanced", "none", "effective")
LOSSES = ("ce", "focal")


def compute_class_weights(labels: Sequence[int], mode: str = "balanced", *, beta: float | None = None) -> np.ndarray:
    """Per-class loss weights ``[w_real, w_fake]`` from the training labels.

    Args:
        labels: ``(n,)`` training labels, 0 or 1.
        mode: ``balanced``: ``w_c = N / (2 N_c)`` (scikit-learn's "balanced", as the paper);
            ``none``: all 1; ``effective``: the effective number of samples of Cui et al.
            (CVPR 2019), ``w_c ∝ (1 - beta) / (1 - beta^N_c)``, scaled to sum to 2.
        beta: for ``effective``; None: ``1 - 1/N`` with ``N`` the number of training crops.
            A fixed beta depends on the data's scale: at 0.999 and thousands of crops both
            ``beta^N_c`` vanish and the weights are all but equal. With ``1 - 1/N``,
            ``beta^N_c ~ exp(-N_c / N)``, so the weights depend on the class shares only and lie
            between none and balanced (at 4:1, w_real / w_fake = 3.0 where balanced gives 4).

    Raises:
        ManifestError: a class is missing from ``labels`` (a one-class training split).
    """
    if mode not in CLASS_WEIGHTS:
        raise unknown_name("class weighting", mode, CLASS_WEIGHTS)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=2)[:2].astype(np.float64)
    if (counts == 0).any():
        missing = "real" if counts[0] == 0 else "fake"
        raise ManifestError(f"The training split has no {missing} crops; a detector needs both classes")
    if mode == "none":
        return np.ones(2)
    if mode == "balanced":
        return counts.sum() / (2 * counts)
    if beta is None:
        beta = 1 - 1 / counts.sum()
    if not 0 <= beta < 1:
        raise SettingError(f"beta must lie in [0, 1), not {beta}", "beta")
    weights = (1 - beta) / (1 - np.power(beta, counts))
    return weights / weights.sum() * 2


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., ICCV 2017) with optional class weights: easy examples count less.

    ``gamma = 0`` is weighted cross-entropy.
    """

    def __init__(self, weight: torch.Tensor | None = None, gamma: float = 2.0):
        super().__init__()
        self.register_buffer("weight", weight if weight is not None else None)
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p
        if self.weight is None:
            return loss.mean()
        w = self.weight[target]
        return (loss * w).sum() / w.sum()


def create_loss(name: str, weight: torch.Tensor | None, *, gamma: float = 2.0) -> nn.Module:
    """``ce``: (weighted) cross-entropy, as the paper; ``focal``: :class:`FocalLoss`."""
    if name not in LOSSES:
        raise unknown_name("loss", name, LOSSES)
    return nn.CrossEntropyLoss(weight=weight) if name == "ce" else FocalLoss(weight, gamma)

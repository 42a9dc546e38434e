"""Scoring crops with a classifier: the one forward pass that training, evaluation and prediction share."""

from __future__ import annotations

import numpy as np
import torch


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to ``device``, channels-last on a GPU (faster convolutions)."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


@torch.no_grad()
def predict_logits(model, loader, device, *, amp: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(logits (n, 2), labels (n,), dataset positions (n,))`` for every item of ``loader``."""
    model.eval()
    out_logits, out_labels, out_index = [], [], []
    for x, y, index in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(to_device(x, device))
        out_logits.append(logits.float().cpu())
        out_labels.append(y)
        out_index.append(index)
    if not out_logits:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return torch.cat(out_logits).numpy(), torch.cat(out_labels).numpy(), torch.cat(out_index).numpy()


def preprocess_crops(images, transform) -> torch.Tensor:
    """``(n, 3, S, S) float32``: the model's one preprocessing applied to ``(h, w, 3) uint8`` RGB crops."""
    return torch.stack([transform(image) for image in images])


@torch.no_grad()
def score_crops(model, images, transform, calibration: dict, device, *, batch_size: int = 64) -> np.ndarray:
    """Calibrated ``p_fake (n,)`` of face crops: the scoring that predict, explain and the report share.

    Args:
        model: the classifier, already on ``device``.
        images: ``(h, w, 3) uint8`` RGB face crops (any size: ``transform`` resizes).
        transform: the model's preprocessing (:func:`unmask.models.build_transform`).
        calibration: a checkpoint's metadata (its ``temperature`` and ``bias``).
    """
    from unmask.training.calibration import calibrated_p_fake

    device = torch.device(device)
    model.eval()
    logits = []
    for start in range(0, len(images), batch_size):
        x = preprocess_crops(images[start:start + batch_size], transform)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits.append(model(to_device(x, device)).float().cpu())
    if not logits:
        return np.zeros(0, np.float64)
    return calibrated_p_fake(torch.cat(logits).numpy(), calibration)

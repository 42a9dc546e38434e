"""Scoring crops with a classifier: the one forward pass that training, evaluation and prediction share."""

from __future__ import annotations

import numpy as np
import torch


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to ``device``, channels-last on a GPU (faster convolutions)."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


@torch.no_grad()
def predict_logits(model, loader, device, *, amp: bool = False,
                   amp_dtype: torch.dtype = torch.bfloat16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(logits (n, 2), labels (n,), dataset positions (n,))`` for every item of ``loader``.

    ``amp``: run under autocast to ``amp_dtype``. Results stay on the device until the end, so
    the host does not wait for each batch.
    """
    model.eval()
    out_logits, out_labels, out_index = [], [], []
    for x, y, index in loader:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            logits = model(to_device(x, device))
        out_logits.append(logits.float())
        out_labels.append(torch.as_tensor(y))
        out_index.append(torch.as_tensor(index))
    if not out_logits:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (torch.cat(out_logits).cpu().numpy(), torch.cat([y.cpu() for y in out_labels]).numpy(),
            torch.cat([i.cpu() for i in out_index]).numpy())

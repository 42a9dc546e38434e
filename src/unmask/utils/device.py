"""Where tensors live: the one choice of device, and the one way batches get there."""

from __future__ import annotations

import torch


def default_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested``, else the GPU when there is one, else the CPU."""
    if requested is not None:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to ``device``, channels-last on a GPU (faster convolutions)."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x

"""Scoring crops with a classifier: the one forward pass that training, evaluation and prediction share."""

from __future__ import annotations

import numpy as np
import torch

from unmask.decision.calibration import calibrated_p_fake
from unmask.decision.record import CLASS_NAMES, CheckpointRecord
from unmask.utils.device import to_device

FAKE = CLASS_NAMES.index("fake")


@torch.no_grad()
def predict_logits(
    model, loader, device, *, amp: bool = False, amp_dtype: torch.dtype = torch.bfloat16, on_batch=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(logits (n, 2), labels (n,), dataset positions (n,))`` for every item of ``loader``.

    ``amp``: run under autocast to ``amp_dtype``. Results stay on the device until the end, so
    the host does not wait for each batch. ``on_batch(items)`` is called after each batch.
    """
    model.eval()
    out_logits, out_labels, out_index = [], [], []
    for x, y, index in loader:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            logits = model(to_device(x, device))
        out_logits.append(logits.float())
        out_labels.append(torch.as_tensor(y))
        out_index.append(torch.as_tensor(index))
        if on_batch:
            on_batch(len(index))
    if not out_logits:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (
        torch.cat(out_logits).cpu().numpy(),
        torch.cat([y.cpu() for y in out_labels]).numpy(),
        torch.cat([i.cpu() for i in out_index]).numpy(),
    )


def score_dataset(
    model,
    dataset,
    device,
    *,
    batch_size: int,
    workers: int = 0,
    amp: bool | torch.dtype | None = False,
    normalise=None,
    channels_last: bool = False,
    on_batch=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of all of ``dataset`` (manifest crops), in dataset order: the one manifest
    scorer of training (validation, calibration) and evaluation.

    Args:
        dataset: items ``(image, label, position)``: model-ready ``float32`` tensors, or ``uint8``
            ones (training's crop cache) when ``normalise`` is given.
        amp: autocast: ``True`` (bfloat16), a dtype, or off (``False``/``None``).
        normalise: :func:`unmask.models.transforms.build_normalise`, applied to each batch on
            ``device`` (for ``uint8`` datasets).
        channels_last: lay batches out channels-last.
        on_batch: called with the number of items after each batch (of this rank's share).

    Under ``torchrun`` each rank scores its share and all ranks get the whole result.
    """
    import torch.distributed as torch_dist

    from unmask.utils import distributed as dist
    from unmask.data.crops import DeviceBatches, batch_loader

    rank, world = (torch_dist.get_rank(), torch_dist.get_world_size()) if torch_dist.is_initialized() else (0, 1)
    loader = batch_loader(
        dataset, batch_size=batch_size, sampler=range(rank, len(dataset), world), workers=workers, device=device
    )
    batches = DeviceBatches(loader, device, normalise, channels_last=channels_last) if normalise else loader
    dtype = torch.bfloat16 if amp is True else (amp or None)
    logits, labels, index = predict_logits(
        model, batches, device, amp=dtype is not None, amp_dtype=dtype or torch.bfloat16, on_batch=on_batch
    )  # index: positions
    parts = dist.gather((logits, labels, index))
    logits = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    order = np.argsort(np.concatenate([p[2] for p in parts]))
    return logits[order], labels[order]


def preprocess_crops(images, transform) -> torch.Tensor:
    """``(n, 3, S, S) float32``: the model's one preprocessing applied to ``(h, w, 3) uint8`` RGB crops."""
    return torch.stack([transform(image) for image in images])


@torch.no_grad()
def forward_logits(model, batch, device) -> np.ndarray:
    """``(n, 2) float32`` logits of a preprocessed ``(n, 3, S, S)`` batch (a tensor or an array):
    the one forward pass of a batch of crops, in bfloat16 autocast on a GPU."""
    device = torch.device(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return model(to_device(torch.as_tensor(batch), device)).float().cpu().numpy()


def score_crops(model, images, transform, record: CheckpointRecord, device, *, batch_size: int = 64) -> np.ndarray:
    """Calibrated ``p_fake (n,)`` of face crops: the scoring that predict, explain and the report share.

    Args:
        model: the classifier, already on ``device``.
        images: ``(h, w, 3) uint8`` RGB face crops (any size: ``transform`` resizes).
        transform: the model's preprocessing (:func:`unmask.models.build_transform`).
        record: the checkpoint's record (its frame calibration).
    """
    model.eval()
    logits = [
        forward_logits(model, preprocess_crops(images[start : start + batch_size], transform), device)
        for start in range(0, len(images), batch_size)
    ]
    if not logits:
        return np.zeros(0, np.float64)
    return calibrated_p_fake(np.concatenate(logits), record)

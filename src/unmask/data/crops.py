"""Crops listed in a manifest, as tensors for training and evaluation, and the batches the model sees."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler

from unmask.errors import ManifestError


def load_crop(path: str | Path) -> np.ndarray:
    """Read a crop as ``(H, W, 3) uint8`` RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ManifestError(f"Cannot read crop {path}; prepare the data again")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def missing_crops_error(missing: list[Path], total: int) -> ManifestError:
    """The error for crops the manifest lists but the disk lacks."""
    return ManifestError(
        f"{len(missing)} of {total} crops listed in the manifest are missing (first: {missing[0]}); "
        "prepare the data again into the same folder"
    )


class CropDataset(Dataset):
    """Rows of a manifest -> ``(image tensor, label, row position)``.

    Args:
        rows: manifest rows (``crop_path`` relative to ``root``, ``label``).
        root: the manifest's folder.
        transform: the model's preprocessing (:func:`unmask.models.build_transform`), or its first
            half (:func:`unmask.models.transforms.build_resize`) when batches are normalised later.

    Raises:
        ManifestError: a listed crop file is missing (checked once, here, not mid-epoch).
    """

    def __init__(self, rows: pd.DataFrame, root: str | Path, transform: Callable):
        self.root = Path(root)
        self.paths = [self.root / p for p in rows["crop_path"]]
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise missing_crops_error(missing, len(self.paths))
        self.labels = rows["label"].to_numpy(dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.transform(load_crop(self.paths[i])), torch.tensor(self.labels[i]), i


def read_batch(dataset: Dataset, positions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The items of ``dataset`` at ``positions`` as one batch ``(images, labels, positions)``,
    read whole where the dataset can (``reads_batches``: the crop cache), else item by item."""
    if getattr(dataset, "reads_batches", False):
        return dataset[positions]
    images, labels, _ = zip(*(dataset[i] for i in positions))
    return torch.stack(images), torch.stack(labels), torch.as_tensor(positions, dtype=torch.int64)


class SeededBatches:
    """A batch sampler whose batches each come with a seed: ``(seed, positions)``.

    The seeds are drawn in the order of the batches from ``generator`` (the caller seeds it,
    per epoch), in the process that samples, so that whatever a dataset draws for a batch
    depends on the batch alone: the same in a loader's worker as in process, with any number
    of workers, in any order they finish.
    """

    def __init__(self, batches: Iterable[list[int]], generator: torch.Generator):
        self.batches, self.generator = batches, generator

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for positions in self.batches:
            yield int(torch.randint(2**62, (), generator=self.generator)), positions


def batch_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    sampler: Iterable[int] | None = None,
    drop_last: bool = False,
    workers: int = 0,
    device: torch.device | None = None,
    seeds: torch.Generator | None = None,
) -> DataLoader:
    """Batches ``(images, labels, positions)`` of ``dataset`` in ``sampler``'s order.

    A dataset that reads whole batches (``reads_batches``: the crop cache) gets lists of
    positions; others are read item by item and stacked. On a GPU the batches come in pinned
    memory, so that copying them to the device does not wait for the host.

    With ``seeds`` the dataset reads whole batches and gets ``(seed, positions)`` items
    (:class:`SeededBatches`): a dataset that makes random images from its crops (self-blended
    fakes) makes them in the loader's workers, reproducibly. Other worker processes hold no
    randomness (augmentation runs on whole batches later), so they live for the whole run; the
    loader draws its worker seed from a generator of its own, so that neither the sampler's
    generator nor the global one depends on how many epochs a worker lived (a resumed run
    repeats the order of one never stopped).
    """
    sampler = sampler if sampler is not None else SequentialSampler(dataset)
    common = dict(
        num_workers=workers,
        pin_memory=device is not None and device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    if seeds is not None:
        batches = SeededBatches(BatchSampler(sampler, batch_size, drop_last), seeds)
        return DataLoader(dataset, batch_size=None, sampler=batches, **common)
    if getattr(dataset, "reads_batches", False):
        return DataLoader(dataset, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last), **common)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **common)


class DeviceBatches:
    """The batches of ``loader`` as the model takes them: on ``device``, augmented, normalised.

    Args:
        loader: yields ``(images (B, 3, S, S) uint8, labels, positions)``.
        normalise: :func:`unmask.models.transforms.build_normalise` of the model's spec.
        augment: ``uint8 -> uint8`` batch augmentation (:class:`unmask.training.augment.BatchAugment`).
        channels_last: lay the batch out channels-last (what a GPU convolves fastest).

    Yields ``(images (B, 3, S, S) float32, labels, positions)``, images and labels on ``device``.
    """

    def __init__(
        self,
        loader: DataLoader,
        device: torch.device,
        normalise: Callable,
        augment: Callable | None = None,
        channels_last: bool = False,
    ):
        self.loader, self.device, self.normalise, self.augment = loader, device, normalise, augment
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y, positions in self.loader:
            x = x.to(self.device, non_blocking=True)  # uint8: a quarter of the bytes of float32
            y = y.to(self.device, non_blocking=True)
            if self.augment is not None:
                x = self.augment(x)
            x = self.normalise(x).contiguous(memory_format=self.memory_format)
            yield x, y, positions


class TensorCrops(Dataset):
    """``uint8`` images held in memory, read a whole batch per index like the crop cache
    (:class:`unmask.training.cache.CachedCropDataset`): for crops made in training, such as the
    validation split's self-blended twins."""

    reads_batches = True

    def __init__(self, images: torch.Tensor, labels: np.ndarray):
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, positions):
        positions = np.asarray(positions, dtype=np.int64)
        return self.images[positions], torch.from_numpy(self.labels[positions]), torch.from_numpy(positions)


def all_images(dataset: Dataset) -> torch.Tensor:
    """Every image of a ``uint8`` crop dataset as one ``(N, 3, S, S)`` tensor."""
    return read_batch(dataset, list(range(len(dataset))))[0].contiguous()

"""Crops listed in a manifest, as tensors for training and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from unmask.errors import ManifestError


def load_crop(path: str | Path) -> np.ndarray:
    """Read a crop as ``(H, W, 3) uint8`` RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ManifestError(f"Cannot read crop {path}; prepare the data again")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class CropDataset(Dataset):
    """Rows of a manifest -> ``(image tensor, label, row position)``.

    Args:
        rows: manifest rows (``crop_path`` relative to ``root``, ``label``).
        root: the manifest's folder.
        transform: the model's preprocessing (:func:`unmask.models.build_transform`).

    Raises:
        ManifestError: a listed crop file is missing (checked once, here, not mid-epoch).
    """

    def __init__(self, rows: pd.DataFrame, root: str | Path, transform: Callable):
        self.root = Path(root)
        self.paths = [self.root / p for p in rows["crop_path"]]
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise ManifestError(
                f"{len(missing)} of {len(self.paths)} crops listed in the manifest are missing (first: {missing[0]}); "
                "run `unmask prepare` again into the same --out"
            )
        self.labels = rows["label"].to_numpy(dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.transform(load_crop(self.paths[i])), torch.tensor(self.labels[i]), i

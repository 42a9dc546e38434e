"""The crop cache: every crop of a data folder, resized for a model, in one memory-mapped array.

Training reads each crop once per epoch; decoding PNGs and resizing them on the cores (or
beside the GPU) the model needs costs a tenth of a CPU training step and starves a GPU. The
cache holds what :func:`unmask.models.transforms.build_resize` makes of each crop, so reading a
batch is a copy out of the page cache, and normalisation (and augmentation) run on whole
batches on the training device.

On disk, under ``DATA/cache/`` (or ``cache_dir``)::

    crops-224px-bicubic-<fingerprint>.npy    (n, S, S, 3) uint8, rows in manifest order
    crops-224px-bicubic-<fingerprint>.json   the fingerprint, crop paths, shape: written last

The fingerprint hashes the manifest file, every crop's path, size and modification time, the
size and the interpolation: when any changes, the name changes and the cache is built again
(the stale one is removed). A cache is built whole before training starts, with every core,
into a temporary file that is renamed into place, and counts only once its JSON exists; a lock
file makes a second run (or the other ranks of a ``torchrun`` job) on the same folder wait for
the first to finish and then use its cache instead of building another. Without the lock (a
file system that has none) two runs would both build, and the rename keeps each correct.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from unmask.data.manifest import MANIFEST_NAME
from unmask.errors import UnmaskError
from unmask.models.registry import BackboneSpec
from unmask.models.transforms import build_resize
from unmask.data.crops import load_crop, missing_crops_error
from unmask.utils.atomic import atomic_path, write_atomic

logger = logging.getLogger(__name__)

FORMAT = 1
CACHE_DIR = "cache"
_CHUNK = 512  # crops handed to the thread pool at a time


@dataclass(frozen=True)
class CropCache:
    """An opened crop cache.

    Attributes:
        images: ``(n, S, S, 3) uint8`` read-only memory map, one row per manifest crop.
        index: crop path (as in the manifest) -> row.
        path: the ``.npy`` file.
        built_s: seconds spent building it in this call (0 when it was there).
    """

    images: np.ndarray
    index: dict[str, int]
    path: Path
    built_s: float = 0.0

    @property
    def nbytes(self) -> int:
        return int(self.images.nbytes)

    def rows(self, crop_paths) -> np.ndarray:
        """Rows of ``crop_paths`` in the array."""
        return np.fromiter((self.index[p] for p in crop_paths), dtype=np.int64, count=len(crop_paths))


def cache_fingerprint(data_root: Path, crop_paths: list[str], size_px: int, interpolation: str) -> str:
    """A hash of what the cache's contents depend on: manifest bytes, crop files, size, interpolation."""
    h = hashlib.sha256(f"unmask crop cache {FORMAT} {size_px} {interpolation}\n".encode())
    with open(data_root / MANIFEST_NAME, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    missing = []
    for p in crop_paths:
        try:
            st = os.stat(data_root / p)
        except FileNotFoundError:
            missing.append(data_root / p)
            continue
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    if missing:
        raise missing_crops_error(missing, len(crop_paths))
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a no-op where the platform has no ``fcntl``)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another run is building the crop cache in %s: waiting for it", path.parent)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _open(npy: Path, meta_path: Path, built_s: float = 0.0) -> CropCache | None:
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(npy, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if list(images.shape) != meta["shape"] or images.dtype != np.uint8:
        return None
    return CropCache(images, {p: i for i, p in enumerate(meta["crop_paths"])}, npy, built_s)


def open_crop_cache(
    data_root: str | Path,
    crop_paths: list[str],
    spec: BackboneSpec,
    size_px: int,
    *,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CropCache:
    """Open the cache of ``crop_paths`` (under ``data_root``) at ``size_px``, building it first if needed.

    Args:
        data_root: the data folder (holds ``manifest.parquet`` and the crops).
        crop_paths: every crop of the manifest, relative to ``data_root`` (train's rows are a subset,
            so one cache serves every protocol and split).
        spec, size_px: the model's preprocessing; its first half (:func:`build_resize`) is stored.
        cache_dir: where the cache lives; default ``data_root/cache``.
        threads: decoding threads while building (default: one per core).
        progress: called with ``(crops done, crops)`` while building.

    Raises:
        UnmaskError: the cache folder cannot be written, or its disk lacks room for the cache.
    """
    data_root = Path(data_root)
    folder = Path(cache_dir) if cache_dir else data_root / CACHE_DIR
    crop_paths = list(dict.fromkeys(crop_paths))
    prefix = f"crops-{size_px}px-{spec.interpolation}"
    name = f"{prefix}-{cache_fingerprint(data_root, crop_paths, size_px, spec.interpolation)}"
    npy, meta_path = folder / f"{name}.npy", folder / f"{name}.json"
    cache = _open(npy, meta_path) if meta_path.is_file() else None
    if cache is not None:
        return cache
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = folder / f"{prefix}.lock"
        lock.touch()
    except OSError as exc:
        raise UnmaskError(
            f"Cannot write the crop cache in {folder} ({exc.strerror}); "
            "pass a cache_dir on a writable disk, or cache=False",
            "cache_dir",
            "cache",
        ) from exc
    with _locked(lock):
        cache = _open(npy, meta_path) if meta_path.is_file() else None  # built while we waited?
        if cache is None:
            started = time.perf_counter()
            _build(data_root, crop_paths, build_resize(spec, size_px), size_px, npy, threads, progress)
            with write_atomic(meta_path, "w") as fh:
                json.dump(
                    {
                        "format": FORMAT,
                        "size_px": size_px,
                        "interpolation": spec.interpolation,
                        "shape": [len(crop_paths), size_px, size_px, 3],
                        "crop_paths": crop_paths,
                    },
                    fh,
                )
            for stale in folder.glob(f"{prefix}-*"):  # older fingerprints; a run still reading one keeps its inode
                if stale.name not in (npy.name, meta_path.name):
                    stale.unlink(missing_ok=True)
            cache = _open(npy, meta_path, time.perf_counter() - started)
    if cache is None:  # pragma: no cover - the files were just written
        raise UnmaskError(f"The crop cache {npy} cannot be read back; remove {folder} and start again")
    return cache


def _build(
    data_root: Path,
    crop_paths: list[str],
    resize,
    size_px: int,
    npy: Path,
    threads: int | None,
    progress: Callable[[int, int], None] | None,
) -> None:
    n = len(crop_paths)
    need = n * size_px * size_px * 3
    free = shutil.disk_usage(npy.parent).free
    if need > free:
        raise UnmaskError(
            f"The crop cache needs {need / 1e9:.1f} GB in {npy.parent}, which has {free / 1e9:.1f} GB free; "
            "pass a cache_dir on a larger disk, or cache=False",
            "cache_dir",
            "cache",
        )
    logger.info("building the crop cache of %d crops at %d px in %s (%.2f GB)", n, size_px, npy.parent, need / 1e9)

    with atomic_path(npy) as tmp:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size_px, size_px, 3))

        def fill(i: int) -> None:  # cv2 and torch release the GIL: threads decode in parallel
            images[i] = resize(load_crop(data_root / crop_paths[i])).permute(1, 2, 0).numpy()  # noqa: F821 (ruff misreads the closure)

        with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
            for start in range(0, n, _CHUNK):
                list(pool.map(fill, range(start, min(n, start + _CHUNK))))
                if progress:
                    progress(min(n, start + _CHUNK), n)
        images.flush()
        del images


class CachedCropDataset(Dataset):
    """Rows of a manifest read from a :class:`CropCache`, a whole batch per index.

    Index it with a list of positions (a :class:`torch.utils.data.BatchSampler` does): returns
    ``(images (B, 3, S, S) uint8, labels (B,) int64, positions (B,) int64)``. The images are a
    channels-last view of the cached rows, the layout a GPU convolves fastest.
    """

    reads_batches = True

    def __init__(self, rows: pd.DataFrame, cache: CropCache):
        self.labels = rows["label"].to_numpy(dtype=np.int64)
        self._rows = cache.rows(list(rows["crop_path"]))
        self._path = cache.path
        self._images = cache.images

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, positions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        positions = np.asarray(positions, dtype=np.int64)
        rows = self._rows[positions]
        order = np.argsort(rows, kind="stable")  # read the file front to back, then put back in batch order
        batch = torch.empty((len(rows), *self._images.shape[1:]), dtype=torch.uint8)  # torch's memory: shareable
        batch.numpy()[order] = self._images[rows[order]]
        return (batch.permute(0, 3, 1, 2), torch.from_numpy(self.labels[positions]), torch.from_numpy(positions))

    def __getstate__(self):  # worker processes map the file themselves instead of copying the array
        return {**self.__dict__, "_images": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._images = np.load(self._path, mmap_mode="r")

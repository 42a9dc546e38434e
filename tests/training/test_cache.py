import shutil
import threading

import numpy as np
import pandas as pd
import pytest
import torch

from unmask.errors import UnmaskError
from unmask.models import build_transform, get_spec
from unmask.models.transforms import build_normalise, build_resize
from unmask.training.cache import CachedCropDataset, open_crop_cache
from unmask.data.crops import CropDataset, DeviceBatches, batch_loader, load_crop


@pytest.fixture
def data(prepared, tmp_path):
    """A private copy of the prepared demo crops (the tests change crops and the manifest)."""
    target = tmp_path / "data"
    shutil.copytree(prepared, target, ignore=shutil.ignore_patterns("cache"))
    return target


def _rows(data):
    return pd.read_parquet(data / "manifest.parquet")


@pytest.mark.parametrize("name,size", [("mobilenetv3_small", 48), ("xception", 80)])
def test_cached_batches_equal_reading_the_pngs_bit_for_bit(data, name, size):
    spec = get_spec(name)
    rows = _rows(data)
    cache = open_crop_cache(data, list(rows["crop_path"]), spec, size)
    assert cache.built_s > 0 and cache.images.shape == (len(rows), size, size, 3)
    assert cache.nbytes == len(rows) * size * size * 3 == cache.path.stat().st_size - 128  # .npy header: 128 bytes
    pick = rows.sample(20, random_state=0)
    x, y, positions = CachedCropDataset(pick, cache)[list(range(20))[::-1]]
    expected = torch.stack([build_transform(spec, size)(load_crop(data / p)) for p in pick["crop_path"]][::-1])
    assert x.dtype == torch.uint8 and torch.equal(build_normalise(spec)(x), expected)
    assert y.tolist() == pick["label"].tolist()[::-1] and positions.tolist() == list(range(20))[::-1]
    # Training's whole data path, cache or PNGs, gives the same normalised batches.
    device = torch.device("cpu")
    cached = DeviceBatches(batch_loader(CachedCropDataset(pick, cache), batch_size=8), device, build_normalise(spec))
    decoded = DeviceBatches(
        batch_loader(CropDataset(pick, data, build_resize(spec, size)), batch_size=8), device, build_normalise(spec)
    )
    for (a, ya, ia), (b, yb, ib) in zip(cached, decoded, strict=True):
        assert torch.equal(a, b) and torch.equal(ya, yb) and torch.equal(ia, ib)


def test_loader_processes_read_the_cache_like_the_main_process(data):
    """Worker processes (a GPU's loaders) map the cache themselves and hand back the same batches."""
    spec = get_spec("mobilenetv3_small")
    rows = _rows(data)
    cache = open_crop_cache(data, list(rows["crop_path"]), spec, 32)
    dataset = CachedCropDataset(rows, cache)
    order = list(torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)))
    here = list(batch_loader(dataset, batch_size=16, sampler=order))
    there = list(batch_loader(dataset, batch_size=16, sampler=order, workers=2))
    assert len(here) == len(there) == -(-len(rows) // 16)
    for (a, ya, ia), (b, yb, ib) in zip(here, there, strict=True):
        assert torch.equal(a, b) and torch.equal(ya, yb) and torch.equal(ia, ib)


def test_the_cache_is_reused_and_rebuilt_when_crops_size_or_manifest_change(data):
    spec = get_spec("mobilenetv3_small")
    rows = _rows(data)
    paths = list(rows["crop_path"])
    first = open_crop_cache(data, paths, spec, 32)
    again = open_crop_cache(data, paths, spec, 32)
    assert again.path == first.path and again.built_s == 0

    # A crop replaced (prepare run again): a new cache holding the new pixels; the stale one is gone.
    import cv2

    changed = data / paths[5]
    cv2.imwrite(str(changed), cv2.imread(str(changed))[:, ::-1])  # mirrored
    rebuilt = open_crop_cache(data, paths, spec, 32)
    assert rebuilt.path != first.path and rebuilt.built_s > 0 and not first.path.exists()
    assert np.array_equal(rebuilt.images[5], build_resize(spec, 32)(load_crop(changed)).permute(1, 2, 0).numpy())
    assert np.array_equal(rebuilt.images[5][:, ::-1], first.images[5])  # the old map still reads (its inode lives)

    # Another size lives beside it; a changed manifest (here: a label corrected) rebuilds.
    other = open_crop_cache(data, paths, spec, 40)
    assert other.path != rebuilt.path and rebuilt.path.exists()
    from unmask.data.manifest import read_manifest, write_manifest

    df, meta = read_manifest(data)
    df.loc[0, "label"] = 1 - df.loc[0, "label"]
    write_manifest(df, data / "manifest.parquet", meta)
    assert open_crop_cache(data, paths, spec, 32).path != rebuilt.path


def test_two_runs_sharing_a_folder_build_the_cache_once(data):
    spec = get_spec("mobilenetv3_small")
    paths = list(_rows(data)["crop_path"])
    results, start = [], threading.Barrier(3)

    def run():
        start.wait()
        results.append(open_crop_cache(data, paths, spec, 56))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len({r.path for r in results}) == 1
    assert sorted(r.built_s > 0 for r in results) == [False, False, True]  # one built, two waited and reused
    assert all(np.array_equal(r.images, results[0].images) for r in results)
    assert sorted(p.name for p in (data / "cache").iterdir() if not p.name.endswith(".lock")) == sorted(
        [results[0].path.name, results[0].path.with_suffix(".json").name]
    )  # no temporary files left


def test_a_full_disk_is_said_before_building(data, monkeypatch):
    import unmask.training.cache as cache_module

    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    with pytest.raises(UnmaskError, match=r"The crop cache needs 0.0 GB in .* which has 0.0 GB free; pass a cache_dir"):
        open_crop_cache(data, list(_rows(data)["crop_path"]), get_spec("mobilenetv3_small"), 32)
    assert not any(p.suffix == ".npy" for p in (data / "cache").iterdir())

"""Self-blended twins made in the loader's workers: labels, pairing, seeds, and the trainer's batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmask.data.crops import TensorCrops, batch_loader
from unmask.data.manifest import read_manifest
from unmask.training.config import make_config
from unmask.training.sbi import BlendedCrops

ELLIPSE = [48.0, 46.0, 22.0, 28.0, 0.0]


def _crops(n: int = 24, size: int = 96) -> TensorCrops:
    """Textured crops, every third one fake."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, 3, size // 8, size // 8, generator=g) * 255
    images = torch.nn.functional.interpolate(base, size=size, mode="nearest").round().to(torch.uint8)
    return TensorCrops(images, np.array([int(i % 3 == 2) for i in range(n)]))


def _batches(dataset, seed: int, workers: int, ratio: float = 1.0) -> list:
    blended = BlendedCrops(dataset, np.tile(np.array([ELLIPSE], np.float32), (len(dataset), 1)), ratio)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(1)).tolist()
    loader = batch_loader(
        blended, batch_size=8, sampler=order, workers=workers, seeds=torch.Generator().manual_seed(seed)
    )
    return list(loader)


def test_twins_made_in_workers_are_labelled_fake_and_paired_with_their_reals():
    dataset = _crops()
    batches = _batches(dataset, seed=3, workers=2)
    assert len(batches) == 3
    for x, y, positions in batches:
        drawn = positions[:8]
        reals = drawn[dataset.labels[drawn] == 0]
        assert torch.equal(x[:8], dataset.images[drawn])  # the batch's own crops, untouched
        assert torch.equal(y[:8], torch.as_tensor(dataset.labels[drawn]))
        assert y[8:].tolist() == [1] * len(reals) and torch.equal(positions[8:], reals)  # a twin per real
        for twin, position in zip(x[8:], positions[8:]):
            real = dataset.images[position]
            assert not torch.equal(twin, real)
            assert torch.equal(twin[:, :4, :4], real[:, :4, :4])  # far from the face: the real, bit for bit


def test_the_same_seed_gives_the_same_batches_with_any_number_of_workers():
    dataset = _crops()
    here, there = _batches(dataset, seed=3, workers=0), _batches(dataset, seed=3, workers=2)
    other = _batches(dataset, seed=4, workers=0)
    for a, b in zip(here, there):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(here, other))


def test_a_ratio_below_one_twins_some_reals():
    dataset = _crops(96)
    twins = sum(len(y) - 8 for _, y, _ in _batches(dataset, seed=0, workers=0, ratio=0.5))
    reals = int((dataset.labels == 0).sum())
    assert 0.3 * reals < twins < 0.7 * reals


@pytest.mark.parametrize("workers", [0, 1])
def test_the_trainers_batches_hold_each_drawn_crop_and_a_twin_of_each_real(prepared, workers):
    from unmask.data.crops import CropDataset
    from unmask.models import get_spec
    from unmask.models.transforms import build_normalise, build_resize
    from unmask.training.trainer import _Data, _loaders, _Run

    manifest, meta = read_manifest(prepared)
    rows = manifest[manifest["split_video"] == "train"].reset_index(drop=True)
    spec = get_spec("mobilenetv3_small")
    config = make_config(model="mobilenetv3_small", pretrained=False, size=64, batch_size=8, augment=False)
    run = _Run(prepared, config, torch.device("cpu"), 0, 1, None, workers, 64, build_normalise(spec))
    data = _Data(
        prepared, manifest, meta, rows, rows, np.ones(2), train_set=CropDataset(rows, prepared, build_resize(spec, 64))
    )
    batches = _loaders(run, data)
    epochs = []
    for _ in range(2):  # an epoch started again (a resume) repeats its batches
        batches.start_epoch(run, 1)
        epochs.append([(x, y.clone(), p.clone()) for x, y, p in batches.batches])
    labels = data.train_set.labels
    for (x, y, positions), (x2, _, _) in zip(*epochs):
        assert torch.equal(x, x2)
        drawn, twins = positions[:8], positions[8:]
        assert torch.equal(y[:8], torch.as_tensor(labels[drawn]))
        assert torch.equal(twins, drawn[labels[drawn] == 0]) and (y[8:] == 1).all()
    seen = torch.cat([y for _, y, _ in epochs[0]])
    drawn = torch.cat([p[:8] for _, _, p in epochs[0]])
    assert int((seen == 0).sum()) == int((labels[drawn] == 0).sum())
    assert int((seen == 1).sum()) == len(drawn)  # the data's fakes and a twin of every real (sbi_ratio 1)

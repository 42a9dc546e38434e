"""The GPU path (bf16/fp16 autocast, channels-last, pinned memory, torch.compile, NCCL); run where a GPU is."""

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from unmask.models import get_spec
from unmask.models.transforms import build_normalise
from unmask.training.cache import CachedCropDataset, open_crop_cache
from unmask.decision.checkpoint import read_metadata
from unmask.training.config import make_config
from unmask.data.crops import DeviceBatches, batch_loader
from unmask.training.trainer import autocast_dtype, train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_device_batches_on_the_gpu_equal_the_cpus(prepared):
    spec = get_spec("mobilenetv3_small")
    rows = pd.read_parquet(prepared / "manifest.parquet")
    cache = open_crop_cache(prepared, list(rows["crop_path"]), spec, 64)
    loader = batch_loader(CachedCropDataset(rows, cache), batch_size=16, workers=2, device=torch.device("cuda"))
    assert loader.pin_memory
    gpu = list(DeviceBatches(loader, torch.device("cuda"), build_normalise(spec), channels_last=True))
    cpu = list(
        DeviceBatches(
            batch_loader(CachedCropDataset(rows, cache), batch_size=16), torch.device("cpu"), build_normalise(spec)
        )
    )
    for (a, ya, _), (b, yb, _) in zip(gpu, cpu, strict=True):
        assert a.is_cuda and a.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(a.cpu(), b, atol=1e-6) and torch.equal(ya.cpu(), yb)


@pytest.mark.parametrize("compile_", [False, True], ids=["eager", "compiled"])
def test_training_on_the_gpu(prepared, tmp_path, compile_):
    config = make_config(
        model="mobilenetv3_small",
        pretrained=False,
        size=64,
        batch_size=16,
        epochs=2,
        max_steps=3,
        device="cuda",
        compile=compile_,
    )
    result = train(prepared, tmp_path / "run", config)
    assert [r["epoch"] for r in result.history] == [1, 2]
    amp = autocast_dtype("auto", torch.device("cuda"))
    assert amp in (torch.bfloat16, torch.float16)
    assert (read_metadata(tmp_path / "run" / "last.safetensors")["scaler"] is not None) == (amp == torch.float16)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL DDP needs two GPUs")
def test_two_process_ddp_on_nccl(prepared, tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "unmask",
        "train",
        str(prepared),
        "--out",
        str(tmp_path / "ddp"),
        "--model",
        "mobilenetv3_small",
        "--no-pretrained",
        "--size",
        "64",
        "--batch-size",
        "8",
        "--epochs",
        "2",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(pd.read_csv(tmp_path / "ddp" / "metrics.csv")["epoch"]) == [1, 2]

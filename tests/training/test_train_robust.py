"""Training state that survives a kill at any moment, and one GPU per rank."""

import subprocess
import sys

import pytest
import torch

from unmask.utils import distributed
from unmask.training import trainer as train_module
from unmask.decision.checkpoint import read_metadata
from unmask.training.config import make_config
from unmask.utils.atomic import HOST_TAG


class Killed(BaseException):
    """Stands in for a kill -9 between two file writes."""


def test_a_kill_between_the_last_and_best_writes_leaves_a_consistent_pair(prepared, tmp_path, monkeypatch):
    config = make_config(
        model="mobilenetv3_small",
        pretrained=False,
        size=64,
        batch_size=8,
        workers=0,
        epochs=2,
        max_steps=2,
        early_stopping=0,
    )
    run = tmp_path / "run"
    save = train_module.save_checkpoint
    writes = []

    def killed_after_the_first_write(path, tensors, meta):
        save(path, tensors, meta)
        writes.append(path.name)
        raise Killed  # epoch 1 improves (it is the first): the kill falls between its two checkpoints

    monkeypatch.setattr(train_module, "save_checkpoint", killed_after_the_first_write)
    with pytest.raises(Killed):
        train_module.train(prepared, run, config)
    dead = int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )
    stale = run / f".model.tmp-{HOST_TAG}-{dead}.a1b2.safetensors"  # a killed atomic write's scrap
    stale.write_bytes(b"\0" * 1000)

    def killed_before_epoch_2_is_saved(path, tensors, meta):
        if meta.get("progress", {}).get("epoch") == 2 or meta.get("epoch") == 2:
            raise Killed
        save(path, tensors, meta)

    monkeypatch.setattr(train_module, "save_checkpoint", killed_before_epoch_2_is_saved)
    with pytest.raises(Killed):
        train_module.train(prepared, run, config, resume=True)
    last, best = read_metadata(run / "last.safetensors"), read_metadata(run / "best.safetensors")
    assert last["progress"]["epoch"] == 1 and best["epoch"] == last["progress"]["best_epoch"] == 1
    assert not stale.exists()


def test_each_rank_takes_its_own_gpu_whatever_the_flag_says(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    for flag in ("cuda", "cuda:0", None):
        assert distributed.local_device(flag) == torch.device("cuda", 3)
    assert chosen == [torch.device("cuda", 3)] * 3
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.local_device("cuda:1") == torch.device("cuda", 1)  # one process: the flag holds
    assert distributed.local_device("cpu") == torch.device("cpu") and len(chosen) == 4


def test_a_second_run_into_a_folder_in_use_stops_at_once(prepared, tmp_path):
    from unmask.errors import UnmaskError
    from unmask.utils.outdir import hold_lock

    run = tmp_path / "run"
    config = make_config(model="mobilenetv3_small", epochs=1, pretrained=False, size=64, batch_size=16, workers=0)
    with hold_lock(run, train_module.LOCK_NAME):  # as another live training run holds it
        with pytest.raises(UnmaskError, match="in use by another unmask run"):
            train_module.train(prepared, run, config)
    assert not (run / "last.safetensors").exists() and not (run / "model.safetensors").exists()
    result = train_module.train(prepared, run, config)  # the lock is released with its holder
    assert result.checkpoint.is_file() and not (run / train_module.LOCK_NAME).exists()

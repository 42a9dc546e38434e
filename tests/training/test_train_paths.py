"""The training data path and run life cycle: crop cache vs PNGs, precision, offline weights, extending a run."""

import dataclasses
import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from unmask.errors import UnmaskError
from unmask.decision.checkpoint import read_metadata
from unmask.training.config import make_config
from unmask.training.trainer import train

QUICK = dict(pretrained=False, size=64, batch_size=16, workers=0)


def _same_weights(a, b) -> bool:
    a, b = load_file(a), load_file(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_crop_cache_and_the_pngs_train_the_same_weights(prepared, tmp_path):
    """Cached batches equal decoded ones bit for bit, so the whole run (augmented) is the same."""
    config = make_config(model="mobilenetv3_small", epochs=1, max_steps=2, **QUICK)
    cached = train(prepared, tmp_path / "cached", config)
    decoded = train(prepared, tmp_path / "decoded", dataclasses.replace(config, cache=False))
    assert read_metadata(cached.checkpoint)["config"]["augment"] is True
    assert _same_weights(cached.checkpoint, decoded.checkpoint)
    assert any(p.suffix == ".npy" for p in (prepared / "cache").iterdir())


def test_resume_with_more_epochs_continues_the_curve(prepared, tmp_path):
    config = make_config(model="mobilenetv3_small", epochs=2, early_stopping=0, lr=1e-3, max_steps=2, **QUICK)
    train(prepared, tmp_path / "run", config)
    with pytest.raises(UnmaskError, match="finished after 2 epochs; to train on, pass resume=True with epochs N > 2"):
        train(prepared, tmp_path / "run", config, resume=True)
    with pytest.raises(UnmaskError, match="has trained 2 epochs already; to train on, pass epochs more than 2"):
        train(prepared, tmp_path / "run", config, resume=True, epochs=2)

    rows = []
    extended = train(prepared, tmp_path / "run", config, resume=True, epochs=3, on_epoch=rows.append)
    assert [r["epoch"] for r in rows] == [3]
    history = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert read_metadata(extended.checkpoint)["config"]["epochs"] == 3
    # The same as a run that was asked for 3 epochs from the start, bit for bit.
    straight = train(prepared, tmp_path / "straight", dataclasses.replace(config, epochs=3))
    pd.testing.assert_frame_equal(
        history.drop(columns="seconds"), pd.read_csv(tmp_path / "straight" / "metrics.csv").drop(columns="seconds")
    )
    assert _same_weights(extended.checkpoint, straight.checkpoint)


def test_resume_rebuilds_the_model_without_its_imagenet_weights(prepared, tmp_path):
    import timm

    weights = tmp_path / "imagenet.pth"
    torch.save(timm.create_model("mobilenetv3_small_100", num_classes=0).state_dict(), weights)
    config = make_config(
        model="mobilenetv3_small", epochs=1, max_steps=1, **{**QUICK, "pretrained": True}, weights=str(weights)
    )
    train(prepared, tmp_path / "run", config)
    weights.unlink()  # resuming must not need them: the checkpoint holds the weights
    result = train(prepared, tmp_path / "run", config, resume=True, epochs=2)
    assert [r["epoch"] for r in result.history] == [1, 2]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_the_cpu(prepared, tmp_path, precision):
    """The GPU's autocast path (and float16's loss scaling) run here on the CPU."""
    config = make_config(model="mobilenetv3_small", epochs=1, max_steps=2, precision=precision, **QUICK)
    result = train(prepared, tmp_path / "run", config)
    assert torch.isfinite(torch.tensor(result.history[0]["train_loss"]))
    scaler = read_metadata(tmp_path / "run" / "last.safetensors")["scaler"]
    assert (scaler is not None) == (precision == "fp16")
    if scaler:
        assert scaler["scale"] > 0 and scaler["_growth_tracker"] >= 0
    with pytest.raises(UnmaskError, match="Unknown precision 'fp8'"):
        make_config(precision="fp8")


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """An empty weights cache, and a hub that accepts connections and never answers."""
    from huggingface_hub import constants

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # the kernel accepts into the backlog; nobody reads or answers
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield constants
    server.close()


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "silent-hub"])
def test_unreachable_imagenet_weights_fail_within_seconds(no_hub, monkeypatch, prepared, tmp_path, offline):
    from unmask.models import create_model

    monkeypatch.setattr(no_hub, "HF_HUB_OFFLINE", offline)
    why = "HF_HUB_OFFLINE is set" if offline else "timed out|no answer in 3 s"
    started = time.perf_counter()
    with pytest.raises(
        UnmaskError,
        match=f"Cannot get ImageNet weights for 'efficientnetv2_s' "
        f"\\(tf_efficientnetv2_s\\): they are not in this machine's cache and "
        f"127.0.0.1:\\d+ cannot be reached \\(({why})\\); pass weights=FILE, "
        "or train from scratch with pretrained=False",
    ):
        create_model("efficientnetv2_s", pretrained=True)
    with pytest.raises(UnmaskError, match="Cannot get ImageNet weights for 'inception_resnet_v2'"):
        train(prepared, tmp_path / "run", make_config(model="inception_resnet_v2", pretrained=True, workers=0))
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "run").exists()


def test_cached_hub_weights_are_used_with_no_network(no_hub, monkeypatch, tmp_path):
    import timm

    from unmask.models import create_model

    monkeypatch.setattr(no_hub, "HF_HUB_OFFLINE", True)
    snapshot = tmp_path / "hf" / "models--timm--mobilenetv3_small_100.lamb_in1k"
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text("0" * 40)
    (snapshot / "snapshots" / ("0" * 40)).mkdir(parents=True)
    source = timm.create_model("mobilenetv3_small_100")
    save_file(source.state_dict(), snapshot / "snapshots" / ("0" * 40) / "model.safetensors")
    model = create_model("mobilenetv3_small", pretrained=True)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key


def test_the_cli_says_at_once_that_offline_weights_are_missing(prepared, tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hf"),
        "TORCH_HOME": str(tmp_path / "torch"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "unmask", "train", str(prepared), "--out", str(tmp_path / "run"), "--model", "xception"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    # (a warning about the 64 px test crops may come first; the error is the one line that is not one)
    assert [line for line in result.stderr.strip().splitlines() if not line.startswith("WARNING")] == [
        "error: Cannot get ImageNet weights for 'xception' (legacy_xception): they are not in this machine's cache "
        "and github.com cannot be reached (HF_HUB_OFFLINE is set); pass --weights FILE, or train from scratch with "
        "--no-pretrained"
    ]

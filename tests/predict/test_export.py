import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from unmask.errors import UnmaskError
from unmask.models import build_transform
from unmask.predict.export import export_model, onnx_session, read_export_metadata
from unmask.decision.calibration import calibrated_p_fake
from unmask.decision.checkpoint import load_classifier

pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is part of the test install")


def _real_crops(prepared: Path, record, n: int = 24) -> torch.Tensor:
    """Face crops that prepare cut from the test clips, through the run's own preprocessing."""
    manifest = pd.read_parquet(prepared / "manifest.parquet")
    rows = manifest.groupby("label").head(n // 2)
    transform = build_transform(record.spec, record.size_px)
    return torch.stack([transform(np.array(Image.open(prepared / p).convert("RGB"))) for p in rows["crop_path"]])


def test_onnx_export_matches_pytorch_on_real_crops(small_run, prepared, tmp_path):
    run = small_run[0].run_dir
    result = export_model(run, tmp_path / "detector.onnx", format="onnx")
    assert result.path == tmp_path / "detector.onnx" and result.path.is_file()
    model, record = load_classifier(run)
    x = _real_crops(prepared, record)
    with torch.no_grad():
        want = model(x).numpy()
    got = onnx_session(result.path).run(["logits"], {"image": x.numpy()})[0]
    assert got.shape == (len(x), 2)  # the batch axis is dynamic: traced with 2, run with 24
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    p_want, p_got = calibrated_p_fake(want, record), calibrated_p_fake(got, record)
    # The same decisions at a threshold amid the scores (the trained model's own threshold may lie
    # on one side of all of them), left out the crops within 1e-3 of it (a rounding may flip those).
    threshold = float(np.median(p_want))
    clear = np.abs(p_want - threshold) > 1e-3
    assert len(np.unique(p_want[clear] >= threshold)) == 2, "the crops should cover both decisions"
    assert np.array_equal(p_want[clear] >= threshold, p_got[clear] >= threshold)

    info = read_export_metadata(result.path)
    assert info == json.loads(result.metadata_path.read_text())
    assert info["input"]["size_px"] == record.size_px and info["input"]["mean"] == list(record.spec.mean)
    assert info["temperature"] == record.temperature and info["threshold"] == record.threshold
    assert info["class_names"] == ["real", "fake"]


def test_torchscript_export_matches_pytorch(small_run, prepared, tmp_path):
    run = small_run[0].run_dir
    result = export_model(run, tmp_path / "detector.pt", format="torchscript")
    model, record = load_classifier(run)
    x = _real_crops(prepared, record, n=8)
    loaded = torch.jit.load(str(result.path))
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-4, rtol=1e-4)
    assert read_export_metadata(result.path)["model"] == "mobilenetv3_small"


def test_a_paper_backbone_exports_to_onnx(paper_runs, tmp_path):
    result = export_model(paper_runs["xception"].checkpoint, tmp_path / "xception.onnx")
    assert result.max_abs_diff <= 1e-4
    session = onnx_session(result.path)
    assert session.get_inputs()[0].shape[1:] == [3, 128, 128]


def test_an_export_that_disagrees_is_not_written(small_run, tmp_path):
    with pytest.raises(UnmaskError, match="differs from the PyTorch model"):
        export_model(small_run[0].run_dir, tmp_path / "m.onnx", atol=-1.0)  # no export can meet a negative bound
    assert not any(tmp_path.iterdir())


def test_export_errors_are_one_line(small_run, tmp_path):
    with pytest.raises(UnmaskError, match="Unknown export format 'tflite'"):
        export_model(small_run[0].run_dir, tmp_path / "m", format="tflite")
    with pytest.raises(UnmaskError, match="No checkpoint"):
        export_model(tmp_path / "nothing", tmp_path / "m.onnx")


def test_export_command(small_run, tmp_path):
    unmask = Path(sys.executable).with_name("unmask")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run(
        [str(unmask), "export", str(small_run[0].run_dir), "--out", str(tmp_path / "d.onnx")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "d.onnx").is_file() and "written:" in done.stdout
    bad = subprocess.run(
        [str(unmask), "export", str(small_run[0].run_dir), "--out", str(tmp_path / "d"), "--format", "tflite"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "tflite" in bad.stderr

"""An export folder judges as its run does, on ONNX Runtime, without importing torch."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unmask import Detector
from unmask.errors import UnmaskError
from unmask.predict.export import export_model

pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is part of the test install")

SRC = Path(__file__).resolve().parents[2] / "src"
# Run first in a child process: any later `import torch` (or timm) fails, and the end checks none slipped in.
NO_TORCH = textwrap.dedent("""
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "timm", "torchvision"):
                raise ImportError(f"{name} imported on the torch-free path")

    sys.meta_path.insert(0, NoTorch())
""")


@pytest.fixture(scope="module")
def exported(small_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported") / "detector"
    export_model(small_run[0].run_dir, folder)
    return folder


@pytest.fixture(scope="module")
def judges(small_run, exported):
    return Detector.load(small_run[0].run_dir, device="cpu"), Detector.load(exported)


def _comparable(prediction) -> tuple[dict, list[float]]:
    """The JSON of a prediction less what differs by nature (time taken, the folder judged with), its
    scores apart (compared to a tolerance: float32 sums in another order)."""
    out = prediction.to_dict()
    out.pop("timings")
    out["model"].pop("run")
    scores = [out.pop("p_fake")]
    for part in (*out["timeline"], *out["tracks"]):
        scores.append(part.pop("p_fake"))
    return out, scores


def test_export_to_a_folder_writes_the_classifier_and_its_whole_record(small_run, exported):
    from unmask.decision.checkpoint import read_metadata
    from unmask.decision.record import CheckpointRecord

    assert sorted(p.name for p in exported.iterdir()) == ["model.onnx", "model.onnx.json"]
    info = json.loads((exported / "model.onnx.json").read_text())
    record = CheckpointRecord.from_metadata(info["checkpoint"])
    assert record == CheckpointRecord.from_metadata(read_metadata(small_run[0].run_dir))
    assert record.prepare_config.detector == "mtcnn" and info["input"]["size_px"] == record.size_px == 64


def test_clips_with_a_known_answer_get_the_torch_paths_verdicts_and_json(judges, demo_clips):
    torch_judge, onnx_judge = judges
    assert onnx_judge.scorer.runtime == "onnxruntime" and torch_judge.scorer.runtime == "torch"
    for clip in sorted(demo_clips.glob("*/*.mp4")):
        want, got = torch_judge.predict(clip), onnx_judge.predict(clip)
        assert got.verdict == want.verdict == clip.parent.name, clip.name  # the tiny run learned these clips
        assert got.p_fake == pytest.approx(want.p_fake, abs=1e-5)
        (got_json, got_scores), (want_json, want_scores) = _comparable(got), _comparable(want)
        assert got_json == want_json
        assert got_scores == pytest.approx(want_scores, abs=1e-5)


def test_predict_and_serve_on_an_export_import_no_torch(judges, exported, demo_clips, tmp_path):
    clip = demo_clips / "fake" / "fake_astronaut_00.mp4"
    script = NO_TORCH + textwrap.dedent(f"""
        import json, sys
        from unmask.cli import main

        sys.argv = ["unmask", "predict", {str(clip)!r}, "--model", {str(exported)!r}, "--json"]
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code

        from fastapi.testclient import TestClient
        from unmask.serve import ServeSettings, create_app

        app = create_app({str(exported)!r}, ServeSettings(upload_root={str(tmp_path)!r}))
        with TestClient(app) as client:
            created = client.post("/api/v1/jobs", files={{"file": ("clip.mp4", open({str(clip)!r}, "rb").read())}})
            job = client.get(created.json()["links"]["self"], params={{"wait": 120}}).json()
        print("SERVED " + json.dumps(job))
        assert not any(name.split(".")[0] in ("torch", "timm") for name in sys.modules)
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed, served = done.stdout.split("SERVED ")
    want = judges[0].predict(clip)
    got = json.loads(printed)
    assert got["verdict"] == want.verdict and got["p_fake"] == pytest.approx(want.p_fake, abs=1e-5)
    job = json.loads(served)
    assert job["status"] == "done" and job["heatmaps"] == [], job
    assert job["result"]["verdict"] == want.verdict and job["result"]["p_fake"] == pytest.approx(want.p_fake, abs=1e-5)


def test_an_export_whose_face_step_needs_torch_says_so_in_one_line(exported, tmp_path):
    import onnx

    graph = onnx.load(str(exported / "model.onnx"))
    entry = next(p for p in graph.metadata_props if p.key == "unmask")
    info = json.loads(entry.value)
    info["checkpoint"]["data"]["prepare"]["detector"] = "facenet"
    entry.value = json.dumps(info)
    onnx.save(graph, str(tmp_path / "model.onnx"))
    with pytest.raises(UnmaskError, match="face detector 'facenet', which runs on torch") as caught:
        Detector.load(tmp_path)
    assert "\n" not in str(caught.value)


def test_an_export_cannot_explain_and_says_why(judges, demo_clips):
    prediction = judges[1].predict(demo_clips / "fake" / "fake_astronaut_00.mp4", keep_faces=True)
    assert not judges[1].can_explain and judges[0].can_explain
    with pytest.raises(UnmaskError, match="heatmaps need the PyTorch model"):
        judges[1].explain(prediction)

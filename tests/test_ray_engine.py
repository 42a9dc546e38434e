"""``--engine ray``: the local engine's outputs, from the workers of a Ray cluster the tests start and stop."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import unmask
from unmask.data.preparation import PrepareConfig, prepare
from unmask.errors import UnmaskError
from unmask.predict.files import predict_files
from unmask.predict.results_file import ResultsFile
from unmask.video import FrameSampler

SMALL = dict(sampler=FrameSampler("uniform", 4), size=64)
SRC = str(Path(unmask.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def ray_cluster():
    """A two-CPU Ray cluster on this machine, for this module's tests only: its daemons are gone
    before the rest of the suite runs (workers find unmask on PYTHONPATH)."""
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def clips_and_a_bad_file(demo_clips, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_clips, root)
    (root / "fake" / "broken.mp4").write_bytes(b"\0" * 100)
    return root


def test_prepare_on_ray_is_a_local_run_even_when_stopped_and_resumed(ray_cluster, clips_and_a_bad_file, tmp_path):
    config = PrepareConfig("folder", **SMALL)
    local = prepare(clips_and_a_bad_file, tmp_path / "local", config)

    def stop_after_the_first(progress):  # Ctrl-C, as the driver sees it, once a video has its crops
        if progress.info.get("faces"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(clips_and_a_bad_file, tmp_path / "ray", config, progress=stop_after_the_first, engine="ray")
    resumed = prepare(clips_and_a_bad_file, tmp_path / "ray", config, engine="ray")
    assert resumed.skipped >= 1 and resumed.skipped + resumed.processed + 1 == local.videos  # + the bad file
    assert (resumed.crops, resumed.failed) == (local.crops, local.failed) == (16, 1)

    ours, theirs = pd.read_parquet(tmp_path / "local" / "manifest.parquet"), pd.read_parquet(resumed.manifest)
    pd.testing.assert_frame_equal(ours, theirs)
    assert (tmp_path / "local" / "failures.csv").read_text() == (tmp_path / "ray" / "failures.csv").read_text()
    assert "broken" in (tmp_path / "ray" / "failures.csv").read_text()
    recorded = [json.loads((tmp_path / d / ".unmask" / "config.json").read_text()) for d in ("local", "ray")]
    assert recorded[0] == recorded[1]
    again = prepare(clips_and_a_bad_file, tmp_path / "ray", config, engine="ray")  # nothing left: no cluster needed
    assert (again.processed, again.skipped) == (0, local.videos - 1)


def test_predict_on_ray_gives_the_local_verdicts_and_goes_on_from_a_stopped_run(
    ray_cluster, small_run, clips_and_a_bad_file, tmp_path
):
    run = small_run[0].run_dir
    local = predict_files(run, [clips_and_a_bad_file / "fake"], tmp_path / "local.jsonl")
    assert (local.inputs, local.judged, local.unreadable) == (3, 3, 1)
    lines = (tmp_path / "local.jsonl").read_text().splitlines(keepends=True)
    # a run stopped after one verdict, killed while writing the second
    (tmp_path / "ray.jsonl").write_text(lines[0] + lines[1][:40])
    seen = []
    resumed = predict_files(
        run,
        [clips_and_a_bad_file / "fake"],
        tmp_path / "ray.jsonl",
        engine="ray",
        progress=lambda p: seen.append(p.done),
    )
    assert (resumed.done_before, resumed.judged) == (1, 2) and seen[-1] == 3

    def verdicts(path):  # scores to 4 places: a worker's torch runs on one thread, summing in another order
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return {
            r["input"]: {
                **{k: v for k, v in r.items() if k not in ("timings", "p_fake", "timeline", "tracks")},
                "p_fake": r["p_fake"] and round(r["p_fake"], 4),
                "timeline": [(s["frame_index"], round(s["p_fake"], 4)) for s in r["timeline"]],
                "tracks": [(t["track_id"], t["verdict"], t["n_faces"]) for t in r["tracks"]],
            }
            for r in rows
        }

    ours, theirs = verdicts(tmp_path / "local.jsonl"), verdicts(tmp_path / "ray.jsonl")
    assert ours == theirs and len(theirs) == 3
    broken = theirs[str(clips_and_a_bad_file / "fake" / "broken.mp4")]
    assert broken["verdict"] == "inconclusive" and broken["reason_code"] == "unreadable"


def test_an_export_folder_judges_on_ray_as_the_run_does(ray_cluster, small_run, demo_clips, tmp_path):
    """Workers load the ONNX export (no checkpoint file there) and reach the run's verdicts."""
    from unmask.predict.export import export_model

    run = small_run[0].run_dir
    export_model(run, tmp_path / "exported")
    inputs = [demo_clips / "fake"]
    on_ray = predict_files(tmp_path / "exported", inputs, tmp_path / "ray.csv", engine="ray")
    predict_files(run, inputs, tmp_path / "local.csv")
    assert on_ray.judged == on_ray.inputs > 0
    ours, theirs = pd.read_csv(tmp_path / "local.csv"), pd.read_csv(tmp_path / "ray.csv")
    assert sorted(zip(ours["input"], ours["verdict"])) == sorted(zip(theirs["input"], theirs["verdict"]))


def test_a_worker_that_dies_costs_only_its_item(ray_cluster):
    from unmask.utils.ray_cluster import run_on_actors

    done, lost = [], []
    # each worker kills itself with the signal it is sent: 0 is no signal, 9 is SIGKILL
    run_on_actors(
        os.getpid,
        (),
        os.kill,
        [0, 9, 0, 0],
        on_done=lambda item, result: done.append(item),
        on_lost=lambda item, why: lost.append((item, why)),
        workers=2,
    )
    assert done == [0, 0, 0] and len(lost) == 1 and lost[0][0] == 9 and "died" in lost[0][1]


def test_a_results_file_drops_a_cut_line_and_becomes_parquet(tmp_path, small_run):
    from unmask.predict.result import Prediction

    def verdict(name):
        return Prediction(input=name, kind="video", verdict="real", p_fake=0.25, threshold=0.5, costs={})

    out = tmp_path / "v.parquet"
    with ResultsFile(out) as results:
        results.write(verdict("a.mp4"))
    partial = out.with_name("v.parquet.partial.csv")
    assert not partial.exists() and list(pd.read_parquet(out)["input"]) == ["a.mp4"]
    with pytest.raises(KeyboardInterrupt), ResultsFile(out) as results:  # stopped: no Parquet yet
        results.write(verdict("b.mp4"))
        raise KeyboardInterrupt
    partial.write_text(partial.read_text() + "real,0.1")  # a kill in the middle of a row
    assert ResultsFile(out).judged() == {"a.mp4", "b.mp4"}
    with ResultsFile(out) as results:
        results.write(verdict("c.mp4"))
    table = pd.read_parquet(out)
    assert list(table["input"]) == ["a.mp4", "b.mp4", "c.mp4"] and table["p_fake"].tolist() == [0.25] * 3


def test_without_ray_the_engine_is_one_line_and_the_local_engine_never_loads_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(
        UnmaskError, match=r"^--engine ray needs Ray, which is not installed: pip install 'unmask\[ray\]'$"
    ):
        prepare(tmp_path, tmp_path / "out", PrepareConfig("folder"), engine="ray")
    with pytest.raises(UnmaskError, match="--engine must be one of local, ray"):
        predict_files(tmp_path, [tmp_path], tmp_path / "v.jsonl", engine="spark")
    code = (
        "import sys; sys.argv = ['unmask', '--help']\nimport unmask.cli\n"
        "try:\n    unmask.cli.main()\nexcept SystemExit:\n    pass\nprint('ray' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "False", result.stderr
    # the local engine: only the Ray helper imports ray, and only inside its functions
    for path in Path(SRC, "unmask").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name == "ray" or name.startswith("ray.") for name in names):
                assert path.name == "ray_cluster.py" and node.col_offset > 0, f"{path}:{node.lineno} imports ray"


def test_a_csv_list_names_the_inputs_relative_to_itself(tmp_path):
    from unmask.predict.batch import find_inputs

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "day.csv").write_text("id,path\n1,../a.mp4\n2,/abs/b.mp4\n3,\n")
    inputs, _ = find_inputs([tmp_path / "lists" / "day.csv"])
    assert inputs == [tmp_path / "lists" / "../a.mp4", Path("/abs/b.mp4")]
    (tmp_path / "empty.csv").write_text("path\n")
    with pytest.raises(UnmaskError, match="lists no input"):
        find_inputs([tmp_path / "empty.csv"])


def test_an_address_where_no_cluster_answers_is_one_line_at_once(demo_clips, tmp_path):
    import socket

    with socket.socket() as free:  # a port that nothing listens on once this block ends
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        result = subprocess.run(
            [sys.executable, "-m", "unmask", "prepare", str(demo_clips), "--dataset", "folder"]
            + ["--out", str(tmp_path / "o"), "--engine", "ray", "--address", address],
            capture_output=True,
            text=True,
            timeout=120,  # Ray alone retries such an address for minutes
            env={**os.environ, "PYTHONPATH": SRC},
        )
        assert result.returncode != 0
        assert f"No Ray cluster answers at {address}" in result.stderr.strip().splitlines()[-1], result.stderr
    with pytest.raises(UnmaskError, match="is not auto, HOST:PORT"):
        prepare(demo_clips, tmp_path / "o", PrepareConfig("folder"), engine="ray", address="nohost")

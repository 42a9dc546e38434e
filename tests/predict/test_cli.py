"""``unmask predict`` through the installed entry point, as a user runs it."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unmask.predict.overlay import FAKE_RGB, REAL_RGB
from unmask.video import sample_frames
from unmask.video.probe import probe_video

SRC = Path(__file__).resolve().parents[2] / "src"


def unmask(*args, timeout=600):
    entry = Path(sys.executable).with_name("unmask")
    command = [str(entry)] if entry.is_file() else [sys.executable, "-m", "unmask"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def test_one_video_in_words_and_as_json(small_run, demo_clips):
    run, clip = small_run[0].run_dir, demo_clips / "fake" / "fake_astronaut_00.mp4"
    result = unmask("predict", clip, "--model", run)
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith("fake_astronaut_00.mp4: ") and first.split()[1] in ("FAKE", "REAL", "INCONCLUSIVE")
    assert "a face in 8 of 8 sampled frames; 1 person" in result.stdout
    assert "most suspicious moments: " in result.stdout
    result = unmask("predict", clip, "--model", run, "--json")
    assert result.returncode == 0, result.stderr
    d = json.loads(result.stdout)
    assert d["input"] == str(clip) and len(d["timeline"]) == 8 and d["model"]["name"] == "mobilenetv3_small"


def test_a_folder_with_a_bad_file_goes_on_and_exits_3(small_run, demo_clips, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(demo_clips / "fake", folder / "fake")
    (folder / "broken.mp4").write_bytes(b"\0" * 100)  # sorts first: the good ones come after it
    (folder / "readme.txt").write_text("not an input: skipped by suffix")
    result = unmask("predict", folder, "--model", small_run[0].run_dir, "--format", "csv")
    assert result.returncode == 3, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [Path(r["input"]).name for r in rows] == ["broken.mp4", "fake_astronaut_00.mp4", "fake_hopper_01.mp4"]
    assert rows[0]["verdict"] == "inconclusive" and "not a readable video" in rows[0]["reason"]
    assert all(r["frames_sampled"] == "8" for r in rows[1:])
    assert "3 inputs, 1 unreadable" in result.stderr
    result = unmask("predict", folder / "fake", "--model", small_run[0].run_dir, "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["frames_with_face"] for line in result.stdout.splitlines()] == [8, 8]


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere.mp4"], "error: No such file or folder: nowhere.mp4"),
        (["nothing"], "error: No video or image in nothing"),
        (["x.mp4", "--format", "xml"], "error: --format must be one of text, table, csv, jsonl, parquet, not 'xml'"),
        (["x.mp4", "--methods", "gradcan"], "error: Unknown explanation method 'gradcan'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_1(args, message, small_run, tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"")
    (tmp_path / "nothing").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "unmask", "predict", *args, "--model", str(small_run[0].run_dir)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_explain_and_overlay_outputs(small_run, demo_clips, tmp_path):
    clip = demo_clips / "fake" / "fake_astronaut_00.mp4"
    why, boxed = tmp_path / "why", tmp_path / "boxed.mp4"
    result = unmask(
        "predict",
        clip,
        "--model",
        small_run[0].run_dir,
        "--explain",
        why,
        "--methods",
        "gradcam,layercam",
        "--max-faces",
        "2",
        "--overlay",
        boxed,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    prediction = json.loads(result.stdout)  # stdout holds the JSON alone
    assert f"overlay: {boxed}" in result.stderr
    index = json.loads((why / "explanations.json").read_text())
    assert index["prediction"] == prediction and len(index["explanations"]) == 4
    assert len(list(why.glob("*_face.png"))) == 2
    for e in index["explanations"]:
        assert (why / e["png"]).is_file() and e["method"] in ("gradcam", "layercam")

    source, out = probe_video(clip), probe_video(boxed)
    assert (out.num_frames, out.width, out.height) == (source.num_frames, source.width, source.height)
    drawn = {f.index: f.image for f in sample_frames(boxed)}
    plain = {f.index: f.image for f in sample_frames(clip)}
    for face in prediction["timeline"]:
        colour = np.array(FAKE_RGB if face["p_fake"] >= prediction["threshold"] else REAL_RGB)
        x1, y1, x2, y2 = (int(round(v)) for v in face["box"])
        ys = slice(y1 + (y2 - y1) // 4, y2 - (y2 - y1) // 4)  # the left edge, clear of the label
        edge, before = drawn[face["frame_index"]][ys, x1], plain[face["frame_index"]][ys, x1]
        assert np.abs(edge.astype(int) - colour).mean() < 40, (face, edge.mean(0))
        assert np.abs(before.astype(int) - colour).mean() > 60
        inside = (slice(y1 + 10, y2 - 10), slice(x1 + 10, x2 - 10))  # the face itself is left alone
        assert np.abs(drawn[face["frame_index"]][inside].astype(int) - plain[face["frame_index"]][inside]).mean() < 8

"""A generated corpus of awkward and broken videos through ``unmask prepare``, as a user runs it.

Asserts what the robustness issue asks for: no traceback, every bad file in failures.csv with a
reason, every good file's crops present, nothing written outside ``--out``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unmask.demo import FACE_BOXES, _head, load_portraits, render_frames, write_video

SRC = Path(__file__).resolve().parents[2] / "src"


def ffmpeg(*args: str) -> bool:
    """Run ffmpeg; False when this build cannot make the file (an encoder it lacks)."""
    result = subprocess.run(["ffmpeg", "-v", "error", "-y", *args], capture_output=True, text=True)
    return result.returncode == 0


def make_corpus(root: Path) -> tuple[set[str], set[str]]:
    """Write the corpus; returns ``(good ids, bad ids)``. Good files hold a face in a readable video."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: scripts/setup.sh installs it")
    photo = load_portraits()["astronaut"]
    frames = render_frames(_head(photo, FACE_BOXES["astronaut"]), num_frames=6, size=(320, 240), seed=1)
    real, fake = root / "real", root / "fake"
    good, bad = set(), set()

    plain = write_video(real / "plain.mp4", frames, 6, codec="mpeg4")
    good.add("real/plain")
    shutil.copy(plain, real / "odd name ünï cödé.mp4")
    good.add("real/odd name ünï cödé")
    shutil.copy(plain, real / "new\nline\tname.mp4")
    good.add("real/new%0Aline%09name")
    write_video(real / "vfr.mp4", frames, 6, codec="libx264", times_s=[0, 0.1, 0.15, 0.5, 0.55, 1.2])
    good.add("real/vfr")
    sideways = write_video(
        root.parent / "scratch" / "sideways.mp4",
        [np.ascontiguousarray(np.rot90(f, -1)) for f in frames],
        6,
        codec="mpeg4",
    )
    if ffmpeg("-i", str(sideways), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(real / "rotated.mp4")):
        good.add("real/rotated")
    write_video(fake / "vp9.webm", frames, 6, codec="libvpx-vp9")
    good.add("fake/vp9")
    for name, options in [
        ("mjpeg.avi", ["-c:v", "mjpeg", "-q:v", "3"]),
        ("grey.mkv", ["-c:v", "ffv1", "-pix_fmt", "gray"]),
        ("ten_bit.mkv", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le"]),
        ("hevc.mp4", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"]),
        ("av1.mkv", ["-c:v", "libsvtav1", "-preset", "12", "-svtav1-params", "log-level=0"]),
        (
            "big_4k.mp4",
            ["-vf", "scale=3840:2160", "-frames:v", "2", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "35"],
        ),
    ]:
        if ffmpeg("-i", str(plain), *options, str(fake / name)):  # where this ffmpeg can make it
            good.add(f"fake/{Path(name).stem}")

    (fake / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    (fake / "empty.mp4").write_bytes(b"")
    data = plain.read_bytes()
    (fake / "truncated.mp4").write_bytes(data[: len(data) // 3])  # PyAV puts the index (moov) last
    moov = data.find(b"moov")
    (fake / "no_moov.mp4").write_bytes(data[: moov - 4] if moov > 0 else data[:100])
    write_video(real / "no_face.mp4", [np.full((120, 160, 3), v, np.uint8) for v in range(60, 120, 10)], 6)
    bad |= {"fake/corrupt", "fake/empty", "fake/truncated", "fake/no_moov", "real/no_face"}
    if ffmpeg("-f", "lavfi", "-i", "sine=d=0.5", "-c:a", "aac", str(fake / "audio_only.mp4")):
        bad.add("fake/audio_only")
    (root.parent / "scratch" / "z.raw").write_bytes(b"\0" * 4)
    if ffmpeg(
        "-f",
        "rawvideo",
        "-pix_fmt",
        "gray",
        "-s",
        "1x1",
        "-r",
        "8",
        "-i",
        str(root.parent / "scratch" / "z.raw"),
        "-c:v",
        "ffv1",
        str(real / "one_pixel.mkv"),
    ):
        bad.add("real/one_pixel")
    (fake / "dangling.mp4").symlink_to(root / "nowhere.mp4")
    (fake / "looping.mp4").symlink_to(fake / "looping.mp4")
    (fake / "same_as_plain.mp4").symlink_to(plain)
    bad |= {"fake/dangling", "fake/looping", "fake/same_as_plain"}
    return good, bad


def snapshot(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (p.is_symlink() or p.stat().st_size, p.is_symlink() or p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_a_corpus_of_bad_inputs_is_prepared_without_a_traceback_or_a_loss(tmp_path):
    root = tmp_path / "data"
    good, bad = make_corpus(root)
    assert len(good) >= 8 and len(bad) >= 10
    before = snapshot(root)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "unmask",
            "prepare",
            str(root),
            "--dataset",
            "folder",
            "--out",
            str(out),
            "--num-frames",
            "3",
            "--size",
            "48",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 3, result.stderr  # some videos failed
    assert f"{len(bad)} videos failed; reasons in" in result.stderr

    failures = pd.read_csv(out / "failures.csv", keep_default_na=False).set_index("video_id")["reason"]
    assert set(failures.index) == bad
    assert (failures.str.len() > 10).all()
    assert failures["fake/dangling"].startswith("dangling symbolic link")
    assert failures["fake/looping"] == "symbolic link loop"
    assert failures["fake/same_as_plain"].startswith("same file as video real/plain")
    assert failures["fake/empty"].endswith("is empty (0 bytes); re-copy or remove it")
    assert "no face found" in failures["real/no_face"]

    df = pd.read_parquet(out / "manifest.parquet")
    assert set(df["video_id"]) == good
    assert all((out / p).is_file() and (out / p).stat().st_size > 0 for p in df["crop_path"])
    assert df.groupby("video_id").size().min() >= 1
    odd = df[df["video_id"] == "real/new%0Aline%09name"]["video_path"].iloc[0]
    assert odd.endswith("new\nline\tname.mp4")  # the file's own name is kept

    assert snapshot(root) == before  # the dataset is read, never written
    assert not any(cwd.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "data", "out", "scratch"]
    assert not [p for p in out.rglob("*") if "\n" in p.name or "\t" in p.name]

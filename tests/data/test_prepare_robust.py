"""prepare loses nothing and leaves nothing behind: nested ids, resume checks, locks, kills."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import pandas as pd
import pytest

from unmask.data.preparation import PrepareConfig, merge_manifests, prepare
from unmask.demo import make_demo_dataset
from unmask.errors import UnmaskError
from unmask.utils.atomic import HOST_TAG
from unmask.video import FrameSampler

SMALL = dict(sampler=FrameSampler("uniform", 2), size=32)


def dead_pid() -> int:
    return int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )


def all_crops_on_disk(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "manifest.parquet")
    missing = [p for p in df["crop_path"] if not (out / p).is_file()]
    assert not missing, f"crops in the manifest but not on disk: {missing[:3]}"
    return df


def test_a_video_whose_id_is_a_folder_of_another_keeps_both_crops(demo_clips, tmp_path):
    root, out = tmp_path / "data", tmp_path / "out"
    (root / "real" / "clip").mkdir(parents=True)
    shutil.copytree(demo_clips / "fake", root / "fake")
    shutil.copy(demo_clips / "real" / "real_astronaut_00.mp4", root / "real" / "clip" / "inner.mp4")
    prepare(root, out, PrepareConfig("folder", **SMALL))
    # A video added later whose id (real/clip) is the folder of one already done (real/clip/inner):
    # writing its crops once deleted the other's.
    shutil.copy(demo_clips / "real" / "real_hopper_01.mp4", root / "real" / "clip.mp4")
    summary = prepare(root, out, PrepareConfig("folder", **SMALL))
    assert (summary.processed, summary.skipped, summary.failed) == (1, 3, 0)
    df = all_crops_on_disk(out)
    assert set(df["video_id"]) == {"fake/fake_astronaut_00", "fake/fake_hopper_01", "real/clip", "real/clip/inner"}
    folders = {Path(p).parent.as_posix() for p in df["crop_path"]}
    assert {"crops/real/clip.crops", "crops/real/clip/inner.crops"} <= folders


def test_resume_prepares_again_a_video_whose_crops_are_gone_or_changed(demo_clips, tmp_path):
    out = tmp_path / "out"
    prepare(demo_clips, out, PrepareConfig("folder", **SMALL))
    df = pd.read_parquet(out / "manifest.parquet")
    first, second = (df[df["video_id"] == v]["crop_path"].iloc[0] for v in sorted(df["video_id"].unique())[:2])
    (out / first).unlink()
    (out / second).write_bytes((out / second).read_bytes()[:50])  # cut short by a full disk
    summary = prepare(demo_clips, out, PrepareConfig("folder", **SMALL))
    assert (summary.processed, summary.skipped) == (2, 2)
    again = all_crops_on_disk(out)
    assert len(again) == len(df) and all(cv2.imread(str(out / p)) is not None for p in again["crop_path"])


def test_a_second_run_into_one_out_is_refused_and_a_dead_runs_lock_taken_over(demo_clips, tmp_path, caplog):
    out = tmp_path / "out"
    lock = out / ".unmask" / "lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))  # a live run
    with pytest.raises(UnmaskError, match=f"is in use by another unmask run \\(pid {os.getpid()} on .*remove .*lock"):
        prepare(demo_clips, out, PrepareConfig("folder", **SMALL))
    assert not (out / "crops").exists()
    lock.write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    stale = [
        out / f".manifest.tmp-{HOST_TAG}-{dead_pid()}.x8.parquet",
        out / ".unmask" / "done" / f".0123.json.tmp-{HOST_TAG}-{dead_pid()}.abc.tmp",
    ]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    with caplog.at_level(logging.WARNING):
        summary = prepare(demo_clips, out, PrepareConfig("folder", **SMALL))
    assert summary.processed == 4 and "taking over the lock" in caplog.text
    assert not lock.exists() and not any(p.exists() for p in stale)


def test_merge_keeps_the_failures_of_every_shard(demo_clips, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_clips, root)
    for i in range(3):
        (root / "fake" / f"broken{i}.mp4").write_bytes(b"\0" * 64)
    parts = [tmp_path / f"part{k}" for k in (1, 2)]
    for k, part in zip((1, 2), parts):
        prepare(root, part, PrepareConfig("folder", shard=(k, 2), **SMALL))
    merge_manifests(parts, tmp_path / "all")
    failures = pd.read_csv(tmp_path / "all" / "failures.csv")
    assert sorted(failures["video_id"]) == ["fake/broken0", "fake/broken1", "fake/broken2"]
    assert failures["reason"].str.contains("not a readable video").all()


def processes_tagged(tag: str) -> list[int]:
    """Pids of the processes whose environment holds ``tag`` (the run and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes through /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_a_multi_worker_prepare_leaves_no_process_behind(tmp_path, sig):
    root = make_demo_dataset(tmp_path / "clips", clips_per_class=6, seconds=2.0, fps=10)
    out = tmp_path / "out"
    tag = f"UNMASK_TEST_TAG={uuid.uuid4().hex}"
    env = {**os.environ, tag.split("=")[0]: tag.split("=")[1]}
    proc = subprocess.Popen(
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
            "6",
            "--size",
            "64",
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    done = out / ".unmask" / "done"
    deadline = time.time() + 120
    while time.time() < deadline and not list(done.glob("*.json")):
        time.sleep(0.02)
    assert len(processes_tagged(tag)) >= 3, "the workers should be running"  # parent, 2 workers (+ tracker)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    deadline = time.time() + 15
    while time.time() < deadline and processes_tagged(tag):
        time.sleep(0.1)
    left = processes_tagged(tag)
    for pid in left:  # clean up before failing, so that a broken build does not leave them running
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} processes outlived the killed prepare"
    assert len(list(done.glob("*.json"))) < 12, "the run ended before it could be killed"
    if sig == signal.SIGTERM:  # as cleanly as Ctrl-C
        assert proc.returncode == 130 and "interrupted: finished work is kept" in err and "Traceback" not in err, err

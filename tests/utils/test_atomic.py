import os
import stat

import pytest

from unmask.utils.atomic import atomic_path, write_atomic


def test_write_atomic_gives_the_file_the_usual_mode_and_leaves_nothing_on_failure(tmp_path):
    old = os.umask(0o022)
    try:
        with write_atomic(tmp_path / "a.txt", "w") as fh:
            fh.write("done")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    with pytest.raises(RuntimeError):
        with write_atomic(tmp_path / "a.txt", "w") as fh:
            fh.write("half")
            raise RuntimeError("interrupted")
    assert (tmp_path / "a.txt").read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_writes_never_touch_the_process_umask(tmp_path, monkeypatch):
    # os.umask can only be read by setting it: racy with other threads creating files.
    def no_umask(mask):
        raise AssertionError("os.umask called during a write")

    monkeypatch.setattr(os, "umask", no_umask)
    with write_atomic(tmp_path / "a.txt", "w") as fh:
        fh.write("x")
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"x")
    assert (tmp_path / "a.txt").read_text() == "x" and (tmp_path / "b.bin").read_bytes() == b"x"


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os,
        "fsync",
        lambda fd: events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file") or real_fsync(fd),
    )
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or real_replace(a, b))
    with write_atomic(tmp_path / "a.txt", "w") as fh:
        fh.write("x")
    assert events == ["fsync-file", "replace", "fsync-dir"]


def test_temporary_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    from unmask.utils.atomic import HOST_TAG, remove_stale_temps

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    dead = [
        tmp_path / f".model.tmp-{HOST_TAG}-{dead_pid}.k2j3h.safetensors",
        tmp_path / f".last.tmp-{HOST_TAG}-{dead_pid}.x1.safetensors",
        tmp_path / f".manifest.tmp-{HOST_TAG}-{dead_pid}.abc.parquet",
    ]
    live = tmp_path / f".manifest.tmp-{HOST_TAG}-{os.getpid()}.abc.parquet"  # a shard writing right now
    other_host = tmp_path / f".manifest.tmp-ffffff-{dead_pid}.abc.parquet"
    kept = [live, other_host, tmp_path / "model.safetensors", tmp_path / ".hidden"]
    for path in dead + kept:
        path.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in kept)

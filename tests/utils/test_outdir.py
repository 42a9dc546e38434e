import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from unmask.errors import UnmaskError
from unmask.utils.outdir import ensure_out_dir, hold_lock


def dead_pid() -> int:
    return int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )


def test_out_folders_that_cannot_work_are_refused_in_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnmaskError, match="output folder .*file is a file; give a folder"):
        ensure_out_dir(tmp_path / "file")
    with pytest.raises(UnmaskError, match="output folder .*file/sub lies under a file"):
        ensure_out_dir(tmp_path / "file" / "sub")
    if os.geteuid() == 0:  # root writes through a folder's mode bits: use a read-only file system
        readonly = Path("/sys")
    else:
        readonly = tmp_path / "ro"
        readonly.mkdir(mode=0o555)
    with pytest.raises(UnmaskError, match="cannot be written"):
        ensure_out_dir(readonly)
    assert ensure_out_dir(tmp_path / "new" / "deep").is_dir()


def test_a_second_run_is_refused_and_a_dead_runs_lock_taken_over(tmp_path, caplog):
    with hold_lock(tmp_path, "lock") as path:
        assert json.loads(path.read_text()) == {"pid": os.getpid(), "host": socket.gethostname()}
        with pytest.raises(UnmaskError, match=f"in use by another unmask run \\(pid {os.getpid()} on"):
            with hold_lock(tmp_path, "lock"):
                pass
        with pytest.raises(UnmaskError, match="in use by another unmask run"):  # a shard waits for a whole run
            with hold_lock(tmp_path, "lock.shard-1-of-2", excludes=("lock",)):
                pass
    assert not (tmp_path / "lock").exists()
    (tmp_path / "lock").write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    with caplog.at_level(logging.WARNING), hold_lock(tmp_path, "lock") as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert "taking over the lock" in caplog.text
    with hold_lock(tmp_path, "lock.shard-1-of-2", excludes=("lock",)):
        with hold_lock(tmp_path, "lock.shard-2-of-2", excludes=("lock",)):  # shards may share one --out
            with pytest.raises(UnmaskError, match="in use by another unmask run"):
                with hold_lock(tmp_path, "lock", excludes=("lock*",)):
                    pass

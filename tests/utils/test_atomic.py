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

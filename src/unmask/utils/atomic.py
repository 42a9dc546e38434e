"""Atomic file writes: a reader sees the old file or the complete new one, never half of one.

A temporary file is named ``.<name>.tmp-<host>-<pid>.<random><suffix>``: a run killed mid-write
leaves it behind, and :func:`remove_stale_temps` at the next start removes those whose writer (a
process of this host) is gone, while a live writer's file (another shard sharing the folder) is
left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Iterator

logger = logging.getLogger(__name__)


def _read_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux's /proc).

    ``os.umask`` can only read the mask by setting it, which races with other threads creating
    files; it is the fallback only, and runs once, at import.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()  # the mode a plain open() gives a new file
HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_TEMP = re.compile(r"^\..+\.tmp-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)\.")


def _temp_prefix(name: str) -> str:
    return f".{name}.tmp-{HOST_TAG}-{os.getpid()}."


def fsync_path(path: str | os.PathLike) -> None:
    """Flush file ``path``, or a folder's new entries and renames, to disk (where the OS allows:
    some file systems refuse to open or fsync a folder; the rename itself is still atomic)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: str | Path, path: Path) -> None:
    """Give ``tmp`` the mode a plain ``open`` would (mkstemp makes it 0600), move it onto ``path``,
    and fsync the folder so that the rename survives a power cut."""
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
    fsync_path(path.parent)


@contextlib.contextmanager
def write_atomic(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``path``; on success fsync it and ``os.replace`` it into place.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path.name), suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix) for libraries that write by name
    (Parquet, PNG); on success it is fsynced and moved onto ``path``, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path.stem), suffix=path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        _publish(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still exists."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Remove the temporary files that killed atomic writes left in ``folder`` (not recursive).

    Only files whose writer was a process of this host that no longer runs are removed; returns
    how many.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        match = _TEMP.match(entry.name)
        if not match or match["host"] != HOST_TAG or pid_alive(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(entry.path)
            removed += 1
    if removed:
        logger.info("removed %d temporary files left by an interrupted run in %s", removed, folder)
    return removed

"""Output folders: checked before any work, and held by one run at a time."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from unmask.errors import UnmaskError
from unmask.utils.atomic import pid_alive, remove_stale_temps

logger = logging.getLogger(__name__)


def ensure_out_dir(path: str | os.PathLike) -> Path:
    """Create folder ``path`` if needed, make sure this process can write into it, and remove the
    temporary files that killed atomic writes left there (see :func:`remove_stale_temps`).

    Run before any long work, so that a bad output folder costs one line, not an hour.

    Raises:
        UnmaskError: ``path`` is a file, lies under a file, or cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UnmaskError(f"The output folder {path} is a file; give a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except (NotADirectoryError, FileExistsError):
        raise UnmaskError(f"The output folder {path} lies under a file, not a folder; give another folder") from None
    except PermissionError:
        raise UnmaskError(
            f"The output folder {path} cannot be written (permission denied); give a folder you can write to"
        ) from None
    except OSError as exc:
        raise UnmaskError(f"The output folder {path} cannot be written ({exc.strerror}); give another folder") from None
    remove_stale_temps(path)
    return path


@contextlib.contextmanager
def hold_lock(folder: Path, name: str, excludes: tuple[str, ...] = ()) -> Iterator[Path]:
    """Hold the lock file ``folder/name`` (pid and host inside) for the duration of the block.

    A second run into the same folder stops with one line naming the holder. A lock left by a
    process of this host that no longer runs is taken over with a warning; one from another host
    cannot be checked and must be removed by hand (the message says so).

    Args:
        folder: where the lock files live.
        name: this run's lock file.
        excludes: other lock names (glob patterns) that a live run must not hold either, e.g. the
            whole-dataset run's lock for a shard.

    Raises:
        UnmaskError: a live run holds ``name`` or one of ``excludes``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for other in sorted({p for pattern in excludes for p in folder.glob(pattern)} - {path}):
        holder = _read_holder(other)
        if holder and _is_live(holder):
            raise _held(folder.parent, other, holder)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read_holder(path)
            if holder and _is_live(holder):
                raise _held(folder.parent, path, holder) from None
            logger.warning("taking over the lock %s left by a run that is gone (%s)", path, _describe(holder))
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise UnmaskError(f"Could not take the lock {path}; another run keeps taking it. Try again")
    try:
        yield path
    finally:
        if _read_holder(path) == me:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _read_holder(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable or half-written: treated as stale
    return holder if isinstance(holder, dict) else None


def _is_live(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # cannot look into another machine: assume it still runs
    return pid_alive(int(holder.get("pid", 0)))


def _describe(holder: dict | None) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "unreadable lock file"


def _held(out: Path, path: Path, holder: dict) -> UnmaskError:
    return UnmaskError(
        f"{out} is in use by another unmask run ({_describe(holder)}); wait for it to end, "
        f"or remove {path} if that run is gone"
    )

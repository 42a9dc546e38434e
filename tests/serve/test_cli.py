"""``unmask serve`` as a user starts it: a real process on loopback, stopped with SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time


def _listening(port: int) -> list[str]:
    """Local addresses listening on ``port`` (IPv4), from the kernel's socket table."""
    found = []
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def _serve(*args):
    return [sys.executable, "-m", "unmask", "serve", *map(str, args)]


def test_bad_flags_get_one_line(tmp_path):
    missing = subprocess.run(_serve("--model", tmp_path / "nothing"), capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and missing.stderr.startswith("error:")
    zero = subprocess.run(_serve("--model", tmp_path, "--workers", "0"), capture_output=True, text=True, timeout=120)
    assert zero.returncode == 1 and "Bad server setting --workers 0" in zero.stderr and "Traceback" not in zero.stderr


def test_serve_answers_on_loopback_and_cleans_up_on_sigterm(small_run, good_clip, tmp_path):
    import os

    import httpx2 as httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, TMPDIR=str(tmp_path))  # where the server makes its private upload folder
    server = subprocess.Popen(_serve("--model", small_run[0].run_dir, "--port", port, "--heatmaps", "1"),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(1200):
            try:
                health = httpx.get(f"{url}/api/v1/health", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()
                time.sleep(0.1)
        assert health.json()["model"] == "mobilenetv3_small"
        [folder] = list(tmp_path.glob("unmask-serve-*"))
        created = httpx.post(f"{url}/api/v1/jobs", files={"file": (good_clip.name, good_clip.read_bytes())}, timeout=60)
        job = httpx.get(f"{url}{created.json()['links']['self']}", params={"wait": 120}, timeout=150).json()
        assert job["status"] == "done" and job["result"]["input"] == good_clip.name
        assert _listening(port) == ["127.0.0.1"], "by default it listens on loopback only"
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    # uvicorn shuts down cleanly, then re-raises the signal so that the exit status tells it was stopped
    assert server.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in err, err
    assert f"http://127.0.0.1:{port}" in out
    assert not folder.exists(), "stopping the server removes every stored upload"

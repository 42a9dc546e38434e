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
    server = subprocess.Popen(
        _serve("--model", small_run[0].run_dir, "--port", port, "--heatmaps", "1"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
    # uvicorn shuts down cleanly; the exit status says it was stopped, as the README and --help do
    assert server.returncode == 130 and "Application shutdown complete" in err, err
    assert f"http://127.0.0.1:{port}" in out
    assert not folder.exists(), "stopping the server removes every stored upload"


def test_port_0_says_the_port_it_got_and_ctrl_c_stops_with_130(small_run, tmp_path):
    import os

    import httpx2 as httpx

    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        _serve("--model", small_run[0].run_dir, "--port", 0),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()  # printed once the port is held and the model loaded
        assert line.startswith(f"unmask serving {small_run[0].run_dir} on http://127.0.0.1:"), (
            line,
            server.stderr.read(),
        )
        port = int(line.split("http://127.0.0.1:", 1)[1].split()[0])
        for _ in range(600):
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200
                break
            except httpx.TransportError:
                assert server.poll() is None
                time.sleep(0.1)
        assert _listening(port) == ["127.0.0.1"]
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 130 and "Application shutdown complete" in err, err
    assert "removed every stored upload" in err and "run the same command again" not in err


def test_a_port_in_use_is_one_line_and_nothing_is_said_to_be_served(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # the port is taken before the model loads: a missing run is not even looked at
        result = subprocess.run(
            _serve("--model", tmp_path / "no-run", "--port", port), capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert result.stderr == (
        f"error: Cannot listen on 127.0.0.1:{port} (Address already in use); another program "
        "listens there; choose another --port (0: any free one)\n"
    )

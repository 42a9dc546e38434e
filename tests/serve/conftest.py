"""Fixtures for the web server: a judge trained in the tests, small bad files, a live loopback server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest


@pytest.fixture(scope="session")
def judge(small_run):
    """The Detector of the small model the training tests train on the demo crops."""
    from unmask import Detector

    result, _ = small_run
    return Detector.load(result.run_dir, device="cpu")


@pytest.fixture(scope="session")
def good_clip(demo_clips):
    """A 1 s, 8 fps face clip (a demo fake)."""
    return sorted((demo_clips / "fake").iterdir())[0]


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, good_clip):
    """Files that are not (whole) videos: text, audio only, empty, cut short (no index)."""
    import av
    import numpy as np

    root = tmp_path_factory.mktemp("bad")
    (root / "notes.txt").write_text("this is not a video\n" * 40)
    (root / "empty.mp4").write_bytes(b"")
    data = good_clip.read_bytes()
    (root / "cut.mp4").write_bytes(data[: min(len(data) // 3, 400)])
    with av.open(str(root / "tone.wav"), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        frame.rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return root


@contextlib.contextmanager
def live_server(app):
    """Run ``app`` under uvicorn on a free loopback port in a background thread; yield its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()

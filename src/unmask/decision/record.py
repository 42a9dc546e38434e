"""The record a trained classifier travels with: what inference needs, and where it came from.

timm attaches a ``pretrained_cfg`` to each model; unmask attaches a :class:`CheckpointRecord` to
each checkpoint. It is written by :meth:`CheckpointRecord.to_metadata` into the safetensors
metadata and read back by :meth:`CheckpointRecord.from_metadata`, the one place where
checkpoints written by older versions are converted to today's fields.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field

from unmask.data.config import PrepareConfig
from unmask.decision.calibration import Costs
from unmask.errors import UnmaskError
from unmask.models.spec import BackboneSpec, spec_from_dict
from unmask.settings import TRAIN_RENAMED, upgrade_recorded

FORMAT = 1  # of the metadata; checkpoint.save_checkpoint writes it too
CLASS_NAMES = ("real", "fake")  # logit and label order everywhere: fake = 1 is the positive class


@dataclass(frozen=True)
class CheckpointRecord:
    """Everything ``predict`` needs to judge as training did, with the run's provenance.

    Attributes:
        spec: the backbone (timm id, normalisation, explanation layer).
        size_px: the input side the classifier was trained at.
        temperature, bias: the frame calibration (``p = sigmoid(margin / T + b)``).
        calibration: the frame calibration's fit: ``prior_fake`` (the validation set's share of
            fakes) and its ``health``.
        video_calibration: one fit per aggregation rule (:func:`~unmask.decision.calibration.fit_video_calibration`).
        costs: what each error costs; ``threshold`` is their Bayes threshold on ``p_fake``.
        prepare: the face step's settings as the training data recorded them.
        config: the training settings, under today's names.
        data: dataset, manifest, protocol, split sizes, the videos seen.
        val: validation metrics of the chosen epoch.
        provenance: machine, versions and time of training.
        train: what the run chose: ``epoch``, ``epochs_run``, ``select_metric``, ``best_metric``,
            ``class_weights``.
    """

    spec: BackboneSpec
    size_px: int
    temperature: float
    bias: float = 0.0
    costs: Costs = field(default_factory=Costs)
    threshold: float = 0.5
    calibration: dict = field(default_factory=dict)
    video_calibration: dict = field(default_factory=dict)
    prepare: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    val: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    class_names: tuple[str, ...] = CLASS_NAMES
    unmask_version: str = ""

    @property
    def frame_prior(self) -> float:
        """The share of fakes the frame calibration was fitted on (its prior)."""
        return float(self.calibration.get("prior_fake", 0.5))

    @property
    def prepare_config(self) -> PrepareConfig:
        """The face step to cut faces with, as the training data's were cut."""
        return PrepareConfig.from_recorded(self.prepare)

    @classmethod
    def from_metadata(cls, meta: dict) -> CheckpointRecord:
        """The record in a checkpoint's metadata, from any version of unmask.

        Raises:
            UnmaskError: an intermediate (uncalibrated) checkpoint, or metadata that is not a
                checkpoint record.
        """
        if "temperature" not in meta:
            raise UnmaskError("an intermediate checkpoint (not calibrated); use the run's model.safetensors")
        if "spec" not in meta or "size_px" not in meta:
            raise UnmaskError("not an unmask checkpoint record (no backbone spec or input size)")
        config = upgrade_recorded(meta.get("config") or {}, TRAIN_RENAMED)
        # older records kept the costs only in the training config, or only the threshold
        costs = meta.get("costs") or config.get("costs")
        costs = Costs(**costs) if costs else None
        threshold = costs.threshold if costs else float(meta.get("threshold", 0.5))
        data = dict(meta.get("data") or {})
        prepare = data.pop("prepare", None) or {"size": int(meta["size_px"])}  # before runs recorded it
        return cls(
            spec=spec_from_dict(meta["spec"]),
            size_px=int(meta["size_px"]),
            temperature=float(meta["temperature"]),
            bias=float(meta.get("bias", 0.0)),
            costs=costs or Costs(),
            threshold=threshold,
            calibration=meta.get("calibration") or {},
            video_calibration=meta.get("video_calibration") or {},
            prepare=dict(prepare),
            config=config,
            data=data,
            val=meta.get("val") or {},
            provenance=meta.get("provenance") or {},
            train={k: meta[k] for k in _TRAIN_KEYS if k in meta},
            class_names=tuple(meta.get("class_names", CLASS_NAMES)),
            unmask_version=str(meta.get("unmask_version", "")),
        )

    def to_metadata(self) -> dict:
        """The JSON-serialisable metadata written into the checkpoint (the inverse of :meth:`from_metadata`)."""
        data = {**self.data, "prepare": self.prepare}
        meta = {
            "format": FORMAT,
            "unmask_version": self.unmask_version,
            "class_names": list(self.class_names),
            "spec": asdict(self.spec),
            "size_px": self.size_px,
            "temperature": self.temperature,
            "bias": self.bias,
            "costs": asdict(self.costs),
            "threshold": self.threshold,
            "calibration": self.calibration,
            "video_calibration": self.video_calibration,
            "config": self.config,
            "data": data,
            "val": self.val,
            "provenance": self.provenance,
            **self.train,
        }
        return json.loads(json.dumps(meta))

    def replace(self, **changes) -> CheckpointRecord:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


_TRAIN_KEYS = ("epoch", "epochs_run", "select_metric", "best_metric", "class_weights")

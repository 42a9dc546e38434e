"""Training settings, with a named preset per protocol; command-line flags override a preset.

``paper`` reproduces the paper exactly: 224 px, Adam lr 1e-3, batch 16, balanced class weights,
ReduceLROnPlateau on validation accuracy (factor 0.5, patience 5, min lr 1e-4), 20 epochs, no
augmentation, best checkpoint by validation accuracy, the ``paper`` (frame-level) split.

``default`` is what we recommend: the honest ``video`` split, the backbone's own input size, a
gentler learning rate for fine-tuning (Adam 1e-4), augmentation (flip, colour jitter, JPEG
re-compression, blur), checkpoint chosen by validation AUC, early stopping after 5 epochs
without progress.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field

from unmask.errors import UnmaskError, unknown_name
from unmask.models.registry import PAPER_BACKBONES, check_weights_file, get_spec
from unmask.training.calibration import Costs

logger = logging.getLogger(__name__)

SELECT_METRICS = ("val_acc", "val_auc", "val_loss")
SAMPLERS = ("shuffle", "balanced")
LABEL_LEVELS = ("video", "face")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (recorded in its checkpoint).

    Attributes:
        model: backbone name (see :data:`unmask.models.BACKBONES`).
        protocol: which split of the manifest to train and validate on.
        size_px: input side; 0 = the backbone's own.
        pretrained: start from ImageNet weights (timm's hub, or ``weights`` when given).
        weights: a local file of ImageNet weights for the backbone.
        class_weights: ``balanced``, ``none`` or ``effective``; loss: ``ce`` or ``focal``.
        effective_beta: beta of ``effective`` weights; None: ``1 - 1/N`` (N training crops),
            which makes the weights depend on the class shares, not on the data's size.
        sampler: ``shuffle``, or ``balanced`` (each batch drawn with equal class odds). A
            balanced sampler already equalises the classes: with class weights on top the
            imbalance would be corrected twice (at 4:1 the effective weighting flips to 1:4), so
            it runs with ``class_weights="none"``; asking for both is refused.
        label_level: ``video``: train on every crop; ``face``: only on crops whose label is known
            for the face itself (drops the other faces of fake videos with several face tracks,
            which may be real bystanders; see :func:`unmask.data.manifest.label_levels`).
        select_metric: the validation metric that picks the best checkpoint (never a test one).
        early_stopping: stop after this many epochs without a better ``select_metric`` (0: never).
        lr_patience: epochs without a better ``select_metric`` after which the learning rate is cut,
            counted as Keras counts (the paper's code): cut on the 5th such epoch with 5. An
            improvement must beat the best by 1e-4 (absolute, as Keras's min_delta).
        costs: what a missed fake and a false alarm cost: they set the decision threshold.
        workers: data-loading worker processes; None: one per core (up to 8) on a GPU, none on a
            CPU, where the model's own threads already use every core (measured: 2 loader
            processes beside training made a 2-core CPU epoch 1.4x slower).
        max_steps_per_epoch: cap on optimiser steps per epoch (0: all); for quick trials.
        precision: ``auto`` (on a GPU bfloat16 autocast where it has bfloat16 units, else float16
            with loss scaling; float32 on a CPU), ``fp32``, ``bf16`` or ``fp16``.
        compile: ``torch.compile`` the model for training (minutes of compiling first; pays off on
            a GPU over long runs).
        cache: read the crops from the crop cache (:mod:`unmask.training.cache`), built on first
            use; ``False`` decodes the PNGs every epoch.
        cache_dir: where the crop cache lives (default: the data folder's ``cache/``).
    """

    model: str = "mobilenetv3_small"
    protocol: str = "video"
    size_px: int = 0
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_factor: float = 0.5
    lr_patience: int = 5
    min_lr: float = 1e-6
    class_weights: str = "balanced"
    loss: str = "ce"
    focal_gamma: float = 2.0
    effective_beta: float | None = None
    sampler: str = "shuffle"
    label_level: str = "video"
    augment: bool = True
    select_metric: str = "val_auc"
    early_stopping: int = 5
    pretrained: bool = True
    weights: str | None = None
    costs: Costs = field(default_factory=Costs)
    seed: int = 42
    workers: int | None = None
    max_steps_per_epoch: int = 0
    device: str | None = None
    precision: str = "auto"
    compile: bool = False
    cache: bool = True
    cache_dir: str | None = None

    def __post_init__(self):
        get_spec(self.model)  # an unknown name fails here, before any work
        if self.select_metric not in SELECT_METRICS:
            raise unknown_name("selection metric", self.select_metric, SELECT_METRICS)
        if self.sampler not in SAMPLERS:
            raise unknown_name("sampler", self.sampler, SAMPLERS)
        if self.label_level not in LABEL_LEVELS:
            raise unknown_name("label level", self.label_level, LABEL_LEVELS)
        if self.sampler == "balanced" and self.class_weights != "none":
            raise UnmaskError(f"--batch-sampler balanced already draws the classes equally; with --class-weights "
                              f"{self.class_weights} the imbalance would be corrected twice (4:1 becomes 1:4). "
                              "Use --class-weights none with it, or --batch-sampler shuffle")
        if self.effective_beta is not None and not 0 <= self.effective_beta < 1:
            raise UnmaskError(f"--beta must lie in [0, 1), not {self.effective_beta}")
        if self.precision not in PRECISIONS:
            raise unknown_name("precision", self.precision, PRECISIONS)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UnmaskError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if not 0 < self.lr < math.inf:  # also refuses nan
            raise UnmaskError(f"--lr must be a positive number, not {self.lr}")
        for name in ("size_px", "max_steps_per_epoch", "early_stopping", "lr_patience"):
            if getattr(self, name) < 0:
                raise UnmaskError(f"--{name.replace('_px', '').replace('_per_epoch', '').replace('_', '-')} "
                                  f"must not be negative, not {getattr(self, name)}")
        if self.workers is not None and self.workers < 0:
            raise UnmaskError(f"--workers must not be negative, not {self.workers}")
        if self.device is not None:
            import torch

            try:
                device = torch.device(self.device)
            except RuntimeError:
                raise UnmaskError(f"--device {self.device!r} is not a device; use cpu, cuda or cuda:N") from None
            if device.type == "cuda" and not torch.cuda.is_available():
                raise UnmaskError(f"--device {self.device} asked for, but this machine has no usable GPU; use --device cpu")


PRESETS: dict[str, dict] = {
    "default": {},
    "paper": dict(
        protocol="paper", size_px=224, epochs=20, batch_size=16, lr=1e-3, lr_factor=0.5, lr_patience=5,
        min_lr=1e-4, class_weights="balanced", loss="ce", sampler="shuffle", augment=False,
        select_metric="val_acc", early_stopping=0,
    ),
}


def make_config(preset: str = "default", **overrides) -> TrainConfig:
    """The ``preset``'s :class:`TrainConfig` with ``overrides`` (``None`` values are ignored)."""
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)
    if preset == "paper" and overrides.get("model") not in PAPER_BACKBONES:
        # The paper's recipe was tuned for its four backbones; on another it reproduces nothing.
        given = f", not {overrides['model']}" if overrides.get("model") else ""
        raise UnmaskError(f"--preset paper needs --model one of the paper's backbones ({', '.join(PAPER_BACKBONES)})"
                          f"{given}; for another backbone use --preset default")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise UnmaskError(f"Unknown training setting(s): {', '.join(sorted(unknown))}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    if values.get("sampler") == "balanced" and overrides.get("class_weights") is None:
        # The balanced sampler does the preset's balancing: weighting as well would do it twice.
        logger.info("--batch-sampler balanced: class weights set to none (the sampler already balances the classes)")
        values["class_weights"] = "none"
    if values.get("weights") is not None:  # checked at the door of a new run, not when a resumed run
        check_weights_file(values["weights"])  # rebuilds its recorded config (the file may be gone)
    return TrainConfig(**values)


def read_config_file(path) -> dict:
    """The training settings in a YAML or JSON file, for :func:`make_config` (``preset`` included).

    The file holds :class:`TrainConfig` fields (``costs`` as ``{missed_fake, false_alarm}``),
    optionally ``preset``; a run's own ``config.json`` (its settings under ``"config"``) is read
    as well, so that a run can be repeated from its folder.
    """
    import json
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise UnmaskError(f"No config file at {path}")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UnmaskError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise UnmaskError(f"{path} is not valid JSON ({exc}); name a YAML file .yaml") from None
    if not isinstance(values, dict):
        raise UnmaskError(f"{path} holds no settings: expected a mapping of setting names to values")
    if isinstance(values.get("config"), dict):  # a run's config.json
        values = values["config"]
    values = dict(values)
    if isinstance(values.get("costs"), dict):
        values["costs"] = Costs(**values["costs"])
    return values

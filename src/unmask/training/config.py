"""Training settings, with a named preset per protocol; command-line flags override a preset.

``paper`` reproduces the paper exactly: 224 px, Adam lr 1e-3, batch 16, balanced class weights,
ReduceLROnPlateau on validation accuracy (factor 0.5, patience 5, min lr 1e-4), 20 epochs, no
augmentation, best checkpoint by validation accuracy, the ``paper`` (frame-level) split.

``default`` is what we recommend: the honest ``video`` split, the backbone's own input size, a
gentler learning rate for fine-tuning (Adam 1e-4), augmentation (flip, colour jitter, JPEG
re-compression, blur), self-blended fakes beside the data's own (``synthesize="sbi"``: on the
realdata set they lifted the test video AUC from 0.54 to 0.61, and to 0.70-0.80 with
``real_only``; see the README), checkpoint chosen by validation AUC, early stopping after 5
epochs without progress.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field

from unmask.errors import SettingError, UnmaskError, unknown_name
from unmask.models.registry import PAPER_BACKBONES, check_weights_file, get_spec
from unmask.settings import TRAIN_RENAMED, named_settings, unknown_setting, upgrade_recorded
from unmask.decision.calibration import Costs
from unmask.training.sbi import SYNTHESIZERS

logger = logging.getLogger(__name__)

SELECT_METRICS = ("val_acc", "val_auc", "val_loss")
SAMPLERS = ("shuffle", "balanced")
LABEL_LEVELS = ("video", "face")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
RENAMED = TRAIN_RENAMED


@named_settings("training setting", RENAMED)
@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (recorded in its checkpoint), named as ``unmask
    train``'s flags (``costs`` are ``--cost-missed-fake`` and ``--cost-false-alarm``).

    Attributes:
        model: backbone name (see :data:`unmask.models.BACKBONES`).
        protocol: which split of the manifest to train and validate on.
        size: input side in pixels; 0 = the backbone's own.
        pretrained: start from ImageNet weights (timm's hub, or ``weights`` when given).
        weights: a local file of ImageNet weights for the backbone.
        class_weights: ``balanced``, ``none`` or ``effective``; loss: ``ce`` or ``focal``.
        beta: beta of ``effective`` weights; None: ``1 - 1/N`` (N training crops),
            which makes the weights depend on the class shares, not on the data's size.
        batch_sampler: ``shuffle``, or ``balanced`` (each batch drawn with equal class odds). A
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
        max_steps: cap on optimiser steps per epoch (0: all); for quick trials.
        precision: ``auto`` (on a GPU bfloat16 autocast where it has bfloat16 units, else float16
            with loss scaling; float32 on a CPU), ``fp32``, ``bf16`` or ``fp16``.
        compile: ``torch.compile`` the model for training (minutes of compiling first; pays off on
            a GPU over long runs).
        cache: read the crops from the crop cache (:mod:`unmask.training.cache`), built on first
            use; ``False`` decodes the PNGs every epoch.
        cache_dir: where the crop cache lives (default: the data folder's ``cache/``).
        synthesize: ``sbi``: self-blended pseudo-fakes made from the real training crops on the
            fly (:mod:`unmask.training.sbi`); ``none``: the data's own fakes only.
        sbi_ratio: with ``sbi``, the probability that a real crop of a batch also appears as its
            self-blended fake (the paper pairs every real, 1.0). A validation split with no fakes
            gets a fixed self-blended twin of every real crop.
        real_only: train on the split's real videos alone (the data's fakes are left out of
            training, not of validation); needs ``synthesize="sbi"``, whose fakes are then the only
            ones. The Self-Blended Images paper's protocol: no generator's traces to learn.
    """

    model: str = "efficientnet_lite0"
    protocol: str = "video"
    size: int = 0
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
    beta: float | None = None
    batch_sampler: str = "shuffle"
    label_level: str = "video"
    augment: bool = True
    select_metric: str = "val_auc"
    early_stopping: int = 5
    pretrained: bool = True
    weights: str | None = None
    costs: Costs = field(default_factory=Costs)
    seed: int = 42
    workers: int | None = None
    max_steps: int = 0
    device: str | None = None
    precision: str = "auto"
    compile: bool = False
    cache: bool = True
    cache_dir: str | None = None
    synthesize: str = "sbi"
    sbi_ratio: float = 1.0
    real_only: bool = False

    def __post_init__(self):
        get_spec(self.model)  # an unknown name fails here, before any work
        if self.select_metric not in SELECT_METRICS:
            raise unknown_name("selection metric", self.select_metric, SELECT_METRICS)
        if self.batch_sampler not in SAMPLERS:
            raise unknown_name("batch sampler", self.batch_sampler, SAMPLERS)
        if self.label_level not in LABEL_LEVELS:
            raise unknown_name("label level", self.label_level, LABEL_LEVELS)
        if self.batch_sampler == "balanced" and self.class_weights != "none":
            raise SettingError(f"batch_sampler balanced already draws the classes equally; with class_weights "
                               f"{self.class_weights} the imbalance would be corrected twice (4:1 becomes 1:4). "
                               "Use class_weights none with it, or batch_sampler shuffle", "batch_sampler", "class_weights")
        if self.beta is not None and not 0 <= self.beta < 1:
            raise SettingError(f"beta must lie in [0, 1), not {self.beta}", "beta")
        if self.synthesize not in SYNTHESIZERS:
            raise unknown_name("synthesizer", self.synthesize, SYNTHESIZERS)
        if not 0 < self.sbi_ratio <= 1:  # also refuses nan
            raise SettingError(f"sbi_ratio must lie in (0, 1], not {self.sbi_ratio}", "sbi_ratio")
        if self.real_only and self.synthesize == "none":
            raise SettingError("real_only trains on real videos alone: it needs synthesize sbi to make the fakes",
                               "real_only", "synthesize")
        if self.precision not in PRECISIONS:
            raise unknown_name("precision", self.precision, PRECISIONS)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise SettingError(f"{name} must be at least 1, not {getattr(self, name)}", name)
        if not 0 < self.lr < math.inf:  # also refuses nan
            raise SettingError(f"lr must be a positive number, not {self.lr}", "lr")
        for name in ("size", "max_steps", "early_stopping", "lr_patience"):
            if getattr(self, name) < 0:
                raise SettingError(f"{name} must not be negative, not {getattr(self, name)}", name)
        if self.workers is not None and self.workers < 0:
            raise SettingError(f"workers must not be negative, not {self.workers}", "workers")
        if self.device is not None:
            import torch

            try:
                device = torch.device(self.device)
            except RuntimeError:
                raise SettingError(f"device {self.device!r} is not a device; use cpu, cuda or cuda:N", "device") from None
            if device.type == "cuda" and not torch.cuda.is_available():
                raise SettingError(f"device {self.device} asked for, but this machine has no usable GPU; use device cpu",
                                   "device")


PRESETS: dict[str, dict] = {
    "default": {},
    "paper": dict(
        protocol="paper", size=224, epochs=20, batch_size=16, lr=1e-3, lr_factor=0.5, lr_patience=5,
        min_lr=1e-4, class_weights="balanced", loss="ce", batch_sampler="shuffle", augment=False,
        select_metric="val_acc", early_stopping=0, synthesize="none",
    ),
}


def make_config(preset: str = "default", **overrides) -> TrainConfig:
    """The ``preset``'s :class:`TrainConfig` with ``overrides`` (``None`` values are ignored)."""
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for name in sorted(overrides):
        if name not in known:
            raise unknown_setting("training setting", name, known, RENAMED)
    if preset == "paper" and overrides.get("model") not in PAPER_BACKBONES:
        # The paper's recipe was tuned for its four backbones; on another it reproduces nothing.
        given = f", not {overrides['model']}" if overrides.get("model") else ""
        raise SettingError(f"preset paper needs one of the paper's backbones as model: {', '.join(PAPER_BACKBONES)}"
                           f"{given} (for another backbone use preset default)", "preset", "model")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    if values.get("batch_sampler") == "balanced" and overrides.get("class_weights") is None:
        # The balanced sampler does the preset's balancing: weighting as well would do it twice.
        logger.info("batch sampler balanced: class weights set to none (the sampler already balances the classes)")
        values["class_weights"] = "none"
    if values.get("weights") is not None:  # checked at the door of a new run, not when a resumed run
        check_weights_file(values["weights"])  # rebuilds its recorded config (the file may be gone)
    return TrainConfig(**values)


def config_from_recorded(recorded: dict) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint recorded (settings under their old names too)."""
    values = upgrade_recorded(recorded, RENAMED)
    return TrainConfig(**{**values, "costs": Costs(**values["costs"])})


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
    values = upgrade_recorded(dict(values), RENAMED)  # a run recorded under the settings' old names
    if isinstance(values.get("costs"), dict):
        values["costs"] = Costs(**values["costs"])
    return values

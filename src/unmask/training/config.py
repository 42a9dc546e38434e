"""Training settings, with a named preset per protocol; command-line flags override a preset.

``paper`` reproduces the paper exactly: 224 px, Adam lr 1e-3, batch 16, balanced class weights,
ReduceLROnPlateau on validation accuracy (factor 0.5, patience 5, min lr 1e-4), 20 epochs, no
augmentation, best checkpoint by validation accuracy, the ``paper`` (frame-level) split.

``default`` is what we recommend: the honest ``video`` split, the backbone's own input size, its
first 3 feature stages frozen at their ImageNet weights with Adam 2e-4 for the rest (none frozen
with ``pretrained=False``), augmentation (flip, colour jitter, JPEG
re-compression, blur), self-blended fakes beside the data's own (``synthesize="sbi"``: they
teach blending seams rather than one generator's look, which is what carries to unseen footage;
see ``docs/train/data.md``), checkpoint chosen by validation AUC, early stopping after 5 epochs
without progress.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from unmask.decision.calibration import Costs
from unmask.errors import SettingError, UnmaskError, unknown_name
from unmask.settings import TRAIN_RENAMED, named_settings, setting, upgrade_recorded

# The backbone registry and the synthesizers (which import torch) are imported where they are
# used: the command line reads these settings to build its options on every call.

logger = logging.getLogger(__name__)

SELECT_METRICS = ("val_acc", "val_auc", "val_loss")
SAMPLERS = ("shuffle", "balanced")
LABEL_LEVELS = ("video", "face")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@named_settings("training setting")
@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (recorded in its checkpoint), named as ``unmask
    train``'s flags (``costs`` are ``--cost-missed-fake`` and ``--cost-false-alarm``). Each field's
    help, choices and flag are defined with it: ``unmask train`` builds its options from them."""

    model: str = setting(
        "efficientnet_lite0",
        help="Backbone.",
        more="See :data:`unmask.models.BACKBONES`.",
        choices="unmask.models.registry:BACKBONES",
    )
    protocol: str = setting("video", help="Split to train and validate on.", choices="unmask.data.splits:PROTOCOLS")
    size: int = setting(0, help="Input side in pixels (0: the backbone's own).")
    epochs: int = setting(
        20, help="Epochs in all; with --resume, trains a finished or interrupted run on to this many."
    )
    batch_size: int = setting(32, help="Crops per optimiser step.")
    lr: float = setting(2e-4, help="Adam learning rate.")
    freeze_stages: int = setting(
        3,
        help="Keep the backbone's first N feature stages (of 5) at their ImageNet weights (0: tune all; "
        "nothing is frozen with --no-pretrained).",
        more="Frozen stages cost no backward pass and cannot overfit a small set; the realdata experiment chose "
        "3 (docs/realdata.md). See :meth:`unmask.models.registry.DeepfakeClassifier.freeze_stages`.",
    )
    weight_decay: float = setting(0.0, help="Adam's weight decay.", flag=False)
    lr_factor: float = setting(0.5, help="What the learning rate is multiplied by when it is cut.", flag=False)
    lr_patience: int = setting(
        5,
        help="Epochs without a better select_metric after which the learning rate is cut.",
        flag=False,
        more="Counted as Keras counts (the paper's code): cut on the 5th such epoch with 5. An improvement must "
        "beat the best by 1e-4 (absolute, as Keras's min_delta).",
    )
    min_lr: float = setting(1e-6, help="The learning rate is never cut below this.", flag=False)
    class_weights: str = setting(
        "balanced", help="Loss weights of the classes.", choices="unmask.training.cost:CLASS_WEIGHTS"
    )
    beta: float | None = setting(
        None,
        help="Beta of --class-weights effective (default 1 - 1/N, N training crops).",
        more="None makes the weights depend on the class shares, not on the data's size.",
    )
    loss: str = setting("ce", help="Cross-entropy or focal loss.", choices="unmask.training.cost:LOSSES")
    focal_gamma: float = setting(2.0, help="Gamma of the focal loss.", flag=False)
    batch_sampler: str = setting(
        "shuffle",
        help="How batches are drawn: shuffle, or balanced (equal class odds; then class weights are none).",
        choices=SAMPLERS,
        more="A balanced sampler already equalises the classes: with class weights on top the imbalance would be "
        "corrected twice (at 4:1 the effective weighting flips to 1:4), so it runs with class_weights none; "
        "asking for both is refused.",
    )
    label_level: str = setting(
        "video",
        help="video: every crop; face: drop the other faces of fake videos with several faces.",
        choices=LABEL_LEVELS,
        more="face trains only on crops whose label is known for the face itself (the other faces of a fake video "
        "may be real bystanders; see :func:`unmask.data.manifest.label_levels`).",
    )
    synthesize: str = setting(
        "sbi",
        help="sbi: also train on self-blended fakes made from the real crops (works with real videos alone); "
        "none: the data's own fakes only.",
        choices="unmask.training.sbi:SYNTHESIZERS",
        more="See :mod:`unmask.training.sbi`.",
    )
    sbi_ratio: float = setting(
        1.0,
        help="With --synthesize sbi: the probability that a real crop also appears as its self-blended fake.",
        more="The paper pairs every real, 1.0. A validation split with no fakes gets a fixed self-blended twin of "
        "every real crop.",
    )
    real_only: bool = setting(
        False,
        help="Train on the real videos alone (with --synthesize sbi, its fakes are the only ones; validation "
        "keeps the data's fakes).",
        flag="--real-only/--with-fakes",
        more="Needs synthesize sbi. The Self-Blended Images paper's protocol: no generator's traces to learn.",
    )
    augment: bool = setting(True, help="Flip, jitter, JPEG, blur.")
    select_metric: str = setting(
        "val_auc", help="Validation metric that picks the checkpoint.", choices=SELECT_METRICS, more="Never a test one."
    )
    early_stopping: int = setting(5, help="Stop after N epochs without progress (0: never).")
    pretrained: bool = setting(
        True,
        help="Start from ImageNet weights (needs internet once) or from scratch.",
        more="From timm's hub, or from weights when given.",
    )
    weights: str | None = setting(
        None, help="Local file of the backbone's ImageNet weights (timm format).", cli_type=Path
    )
    costs: Costs = setting(
        default_factory=Costs,
        flag=False,
        help="What a missed fake and a false alarm cost: they set the decision threshold.",
    )
    seed: int = setting(42, help="Seed of the data order, augmentation and initial weights.")
    workers: int | None = setting(
        None,
        help="Data-loading worker processes, which also make the self-blended fakes (default: one per core "
        "up to 8 on a GPU, none on a CPU).",
        more="On a CPU the model's own threads already use every core, so loader processes beside them only "
        "compete for it (docs: the training-speed benchmark); with 0 the self-blended fakes are made in process.",
    )
    max_steps: int = setting(0, help="At most N steps per epoch (0: all; for quick trials).")
    device: str | None = setting(None, help="cpu, cuda, cuda:1 ... (default: this rank's GPU, else CPU).")
    precision: str = setting(
        "auto",
        help="auto: bf16 or fp16 autocast on a GPU, fp32 on a CPU.",
        choices=PRECISIONS,
        more="On a GPU auto is bfloat16 where it has bfloat16 units, else float16 with loss scaling.",
    )
    compile: bool = setting(False, help="torch.compile the model (slow start; for long GPU runs).")
    cache: bool = setting(
        True,
        help="Read crops from the crop cache (built on first use) or decode the PNGs each epoch.",
        more="See :mod:`unmask.training.cache`.",
    )
    cache_dir: str | None = setting(None, help="Where the crop cache lives (default: DATA_DIR/cache).", cli_type=Path)

    def __post_init__(self):
        from unmask.models.registry import get_spec
        from unmask.training.sbi import SYNTHESIZERS

        get_spec(self.model)  # an unknown name fails here, before any work
        if self.select_metric not in SELECT_METRICS:
            raise unknown_name("selection metric", self.select_metric, SELECT_METRICS)
        if self.batch_sampler not in SAMPLERS:
            raise unknown_name("batch sampler", self.batch_sampler, SAMPLERS)
        if self.label_level not in LABEL_LEVELS:
            raise unknown_name("label level", self.label_level, LABEL_LEVELS)
        if self.batch_sampler == "balanced" and self.class_weights != "none":
            raise SettingError(
                f"batch_sampler balanced already draws the classes equally; with class_weights "
                f"{self.class_weights} the imbalance would be corrected twice (4:1 becomes 1:4). "
                "Use class_weights none with it, or batch_sampler shuffle",
                "batch_sampler",
                "class_weights",
            )
        if self.beta is not None and not 0 <= self.beta < 1:
            raise SettingError(f"beta must lie in [0, 1), not {self.beta}", "beta")
        if self.synthesize not in SYNTHESIZERS:
            raise unknown_name("synthesizer", self.synthesize, SYNTHESIZERS)
        if not 0 < self.sbi_ratio <= 1:  # also refuses nan
            raise SettingError(f"sbi_ratio must lie in (0, 1], not {self.sbi_ratio}", "sbi_ratio")
        if self.real_only and self.synthesize == "none":
            raise SettingError(
                "real_only trains on real videos alone: it needs synthesize sbi to make the fakes",
                "real_only",
                "synthesize",
            )
        if self.precision not in PRECISIONS:
            raise unknown_name("precision", self.precision, PRECISIONS)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise SettingError(f"{name} must be at least 1, not {getattr(self, name)}", name)
        if not 0 < self.lr < math.inf:  # also refuses nan
            raise SettingError(f"lr must be a positive number, not {self.lr}", "lr")
        for name in ("size", "max_steps", "early_stopping", "lr_patience", "freeze_stages"):
            if getattr(self, name) < 0:
                raise SettingError(f"{name} must not be negative, not {getattr(self, name)}", name)
        if self.workers is not None and self.workers < 0:
            raise SettingError(f"workers must not be negative, not {self.workers}", "workers")
        if self.device is not None:
            import torch

            try:
                device = torch.device(self.device)
            except RuntimeError:
                raise SettingError(
                    f"device {self.device!r} is not a device; use cpu, cuda or cuda:N", "device"
                ) from None
            if device.type == "cuda" and not torch.cuda.is_available():
                raise SettingError(
                    f"device {self.device} asked for, but this machine has no usable GPU; use device cpu", "device"
                )


PRESETS: dict[str, dict] = {
    "default": {},
    "paper": dict(
        protocol="paper",
        size=224,
        epochs=20,
        batch_size=16,
        lr=1e-3,
        lr_factor=0.5,
        lr_patience=5,
        min_lr=1e-4,
        class_weights="balanced",
        loss="ce",
        batch_sampler="shuffle",
        augment=False,
        select_metric="val_acc",
        early_stopping=0,
        synthesize="none",
        freeze_stages=0,  # every layer trainable from the first epoch
    ),
}


def make_config(preset: str = "default", **overrides) -> TrainConfig:
    """The ``preset``'s :class:`TrainConfig` with ``overrides`` (``None`` values are ignored)."""
    from unmask.models.registry import PAPER_BACKBONES, check_weights_file

    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for name in sorted(overrides):
        if name not in known:
            raise unknown_name("training setting", name, known)
    if preset == "paper" and overrides.get("model") not in PAPER_BACKBONES:
        # The paper's recipe was tuned for its four backbones; on another it reproduces nothing.
        given = f", not {overrides['model']}" if overrides.get("model") else ""
        raise SettingError(
            f"preset paper needs one of the paper's backbones as model: {', '.join(PAPER_BACKBONES)}"
            f"{given} (for another backbone use preset default)",
            "preset",
            "model",
        )
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    if values.get("batch_sampler") == "balanced" and overrides.get("class_weights") is None:
        # The balanced sampler does the preset's balancing: weighting as well would do it twice.
        logger.info("batch sampler balanced: class weights set to none (the sampler already balances the classes)")
        values["class_weights"] = "none"
    if values.get("weights") is not None:  # checked at the door of a new run, not when a resumed run
        check_weights_file(values["weights"])  # rebuilds its recorded config (the file may be gone)
    return TrainConfig(**values)


# What a run did before the setting existed, where that is not today's default.
RECORDED_BEFORE = {"freeze_stages": 0, "synthesize": "none"}


def _upgrade(recorded: dict) -> dict:
    """Recorded settings under today's names, with what a run did before a setting existed."""
    return {**RECORDED_BEFORE, **upgrade_recorded(recorded, TRAIN_RENAMED)}


def config_from_recorded(recorded: dict) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint recorded (settings under their old names too; a
    setting added since is what the run did without it, not today's default)."""
    values = _upgrade(recorded)
    return TrainConfig(**{**values, "costs": Costs(**values["costs"])})


def read_config_file(path) -> dict:
    """The training settings in a YAML or JSON file, for :func:`make_config` (``preset`` included).

    The file holds :class:`TrainConfig` fields (``costs`` as ``{missed_fake, false_alarm}``),
    optionally ``preset``; a run's own ``config.json`` (its settings under ``"config"``) is read
    as well, so that a run can be repeated from its folder.
    """
    import json

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
    if isinstance(values.get("config"), dict):  # a run's config.json, recorded perhaps under the settings' old names
        values = _upgrade(values["config"])
    values = dict(values)
    if isinstance(values.get("costs"), dict):
        values["costs"] = Costs(**values["costs"])
    return values

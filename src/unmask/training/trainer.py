"""``unmask train``: a manifest in, a calibrated cost-sensitive checkpoint out.

One loop for one process and for ``torchrun`` (DistributedDataParallel): ``train_one_epoch``
then ``evaluate`` each epoch, the best checkpoint chosen on validation data only, and at the end
calibration (temperature and bias) and the cost-based threshold fitted on the validation split. Every epoch
ends with an atomic ``last.safetensors`` holding everything ``--resume`` needs.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, WeightedRandomSampler

from unmask import __version__
from unmask.data.config import RENAMED as PREPARE_RENAMED
from unmask.data.manifest import read_manifest, select_label_level, select_split
from unmask.errors import SettingError
from unmask.decision.aggregate import aggregate_videos
from unmask.evaluation.metrics import basic_metrics, reliability
from unmask.evaluation.model_card import record_videos, split_sizes, write_model_card
from unmask.faces.crop import DEFAULT_MARGIN
from unmask.models import create_model, get_spec
from unmask.decision.scoring import score_dataset
from unmask.utils.device import to_device
from unmask.models.transforms import build_normalise, build_resize
from unmask.settings import upgrade_recorded
from unmask.utils import distributed as dist
from unmask.decision.calibration import (
    calibrate_video_scores,
    calibrated_p_fake,
    fit_calibration,
    fit_video_calibration,
    p_fake,
)
from unmask.decision.checkpoint import load_tensors, read_metadata, save_checkpoint
from unmask.decision.record import CheckpointRecord
from unmask.training.config import TrainConfig, config_from_recorded
from unmask.training.cost import compute_class_weights, create_loss
from unmask.training.augment import BatchAugment
from unmask.training.cache import CachedCropDataset, CropCache, open_crop_cache
from unmask.data.crops import CropDataset, DeviceBatches, batch_loader
from unmask.training.sbi import SBI_METHOD, BlendedCrops, face_ellipses, with_blended_twins
from unmask.utils.atomic import write_atomic
from unmask.utils.outdir import ensure_out_dir, hold_lock
from unmask.utils.provenance import collect_provenance
from unmask.utils.progress import Progress, ProgressCallback, ProgressMeter

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"  # in the run folder while a run writes there

HISTORY_FIELDS = [
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "train_auc",
    "train_f1",
    "val_loss",
    "val_acc",
    "val_auc",
    "val_f1",
    "seconds",
]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    checkpoint: Path
    best_epoch: int
    best_metric: float
    temperature: float
    bias: float
    threshold: float
    history: list[dict]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_one_epoch(
    model,
    loader,
    loss_fn,
    optimiser,
    device,
    *,
    max_steps: int = 0,
    amp: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """One pass over ``loader``; returns ``(mean loss, labels, p_fake)`` of the batches seen.

    ``amp`` is the autocast dtype (``None``: full precision); ``scaler`` scales float16 losses.
    Losses and scores stay on the device until the epoch ends: a GPU is never made to wait
    for the host mid-epoch.
    """
    model.train()
    total, seen, labels, scores = torch.zeros((), dtype=torch.float64, device=device), 0, [], []
    steps = min(len(loader), max_steps) if max_steps else len(loader)
    for step, (x, y, _) in zip(range(steps), loader):  # range first: no batch is read past the last step
        x, y = to_device(x, device), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(x)
            loss = loss_fn(logits.float(), y)
        optimiser.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
        else:
            loss.backward()
            optimiser.step()
        total += loss.detach().double() * len(y)
        seen += len(y)
        labels.append(y)
        scores.append(logits.detach().float())
        if on_step:
            on_step(step + 1, steps)
    return total.item() / max(seen, 1), torch.cat(labels).cpu().numpy(), p_fake(torch.cat(scores).cpu().numpy())


def balanced_sampler(labels: np.ndarray, generator: torch.Generator) -> WeightedRandomSampler:
    """Draw ``len(labels)`` items with replacement, each class with equal odds."""
    per_sample = (1.0 / np.bincount(labels, minlength=2))[labels]
    return WeightedRandomSampler(per_sample, num_samples=len(labels), replacement=True, generator=generator)


def validation_loss(loss_fn, logits: np.ndarray, labels: np.ndarray, device) -> float:
    """The training loss (with its class weights or focal term) on validation ``logits``."""
    with torch.no_grad():
        return float(loss_fn(torch.as_tensor(logits, device=device), torch.as_tensor(labels, device=device)))


def _optimiser_tensors(optimiser) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimiser.state_dict()
    tensors = {f"optim.{i}.{k}": v for i, s in state["state"].items() for k, v in s.items() if torch.is_tensor(v)}
    return tensors, {"param_groups": state["param_groups"], "keys": sorted(tensors)}


def _restore_optimiser(optimiser, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key in meta["keys"]:
        _, i, name = key.split(".", 2)
        state.setdefault(int(i), {})[name] = tensors[key]
    optimiser.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _write_history(path: Path, history: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HISTORY_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    with write_atomic(path, "w") as fh:
        fh.write(text.getvalue())


def _repair_best(best_path: Path, last_path: Path, last_meta: dict, base_meta: dict) -> None:
    """Make ``best`` agree with the resume state: a run killed between writing ``last`` and
    ``best`` of an improving epoch left ``best`` an epoch behind; that epoch's weights are in ``last``."""
    progress = last_meta["progress"]
    if progress["best_epoch"] != progress["epoch"]:
        return  # best was written in an earlier epoch, before the last it agrees with
    if best_path.is_file() and read_metadata(best_path).get("epoch") == progress["best_epoch"]:
        return
    logger.warning(
        "%s is behind the resume state (a kill between two writes); writing it again from %s",
        best_path.name,
        last_path.name,
    )
    model = {k: v for k, v in load_tensors(last_path).items() if k.startswith("model.")}
    save_checkpoint(best_path, model, {**base_meta, "epoch": progress["epoch"], "val": last_meta["history"][-1]})


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (``None``: float32 throughout)."""
    if precision == "auto":
        if device.type != "cuda":
            return None  # a CPU without bfloat16 units computes it slower than float32
        precision = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _augment_seed(seed: int, epoch: int, rank: int, kind: str = "augment") -> int:
    """A seed of its own for each epoch, rank and kind of randomness (ranks augment their shares differently)."""
    return int.from_bytes(hashlib.sha256(f"{kind} {seed} {epoch} {rank}".encode()).digest()[:8], "little") >> 1


def _expected_labels(train_rows, config: TrainConfig) -> np.ndarray:
    """The training labels as the loss will see them: with self-blended fakes, a fake for each
    real crop that gets a twin (``sbi_ratio`` of them), so that class weights count them."""
    labels = train_rows["label"].to_numpy(dtype=np.int64)
    if config.synthesize != "sbi":
        return labels
    reals = int((labels == 0).sum())
    if reals == 0:
        raise SettingError(
            "synthesize sbi makes its fakes from real faces, and the training split has none", "synthesize"
        )
    return np.concatenate([labels, np.ones(int(round(config.sbi_ratio * reals)), dtype=np.int64)])


def _datasets(
    data_root: Path,
    manifest,
    train_rows,
    val_rows,
    spec,
    size_px: int,
    config: TrainConfig,
    on_cache: Callable[[CropCache], None] | None,
    on_cache_progress: Callable[[int, int], None] | None,
):
    """Train and validation sets of ``uint8`` images at ``size_px``: from the crop cache, or the PNGs."""
    if not config.cache:
        resize = build_resize(spec, size_px)
        return CropDataset(train_rows, data_root, resize), CropDataset(val_rows, data_root, resize)
    cache = open_crop_cache(
        data_root, list(manifest["crop_path"]), spec, size_px, cache_dir=config.cache_dir, progress=on_cache_progress
    )
    logger.info(
        "crop cache %s: %.2f GB%s",
        cache.path,
        cache.nbytes / 1e9,
        f", built in {cache.built_s:.1f} s" if cache.built_s else "",
    )
    if on_cache:
        on_cache(cache)
    return CachedCropDataset(train_rows, cache), CachedCropDataset(val_rows, cache)


def warn_upsampling(manifest_meta: dict, size_px: int, *, is_main: bool = True) -> bool:
    """Warn when the prepared crops are smaller than the model's input: they are enlarged for it,
    which adds no detail and blurs the fine traces (blending edges, resampling) a detector looks for."""
    crop_px = upgrade_recorded(manifest_meta, PREPARE_RENAMED).get("size")
    if crop_px is None or crop_px >= size_px:
        return False
    if is_main:
        logger.warning(
            "the crops are %d px and the model's input %d px: training enlarges every crop %.2fx, which "
            "blurs what a detector looks for; prepare with size %d, or train with size %d",
            crop_px,
            size_px,
            size_px / crop_px,
            size_px,
            crop_px,
        )
    return True


def _cache_progress(progress: ProgressCallback, also: Callable[[int, int], None] | None) -> Callable[[int, int], None]:
    """The crop cache's ``(done, total)`` reports as :class:`Progress` of a task of its own."""
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        progress(Progress("crop cache", "decoding crops", done, total, "crop", time.perf_counter() - started))
        if also:
            also(done, total)

    return report


def train(data_dir: str | Path, run_dir: str | Path, config: TrainConfig, **kwargs) -> TrainResult:
    """Train ``config.model`` on the manifest in ``data_dir``; write the run to ``run_dir``.

    Holds ``run_dir/.lock`` (pid and host) while it runs, so that a second run started into the
    same folder stops at once with one line instead of interleaving its checkpoints with this
    one's. Under ``torchrun`` rank 0 holds it for all ranks. Arguments: see :func:`_train`.
    """
    if int(os.environ.get("RANK", "0")) != 0:
        return _train(data_dir, run_dir, config, **kwargs)
    created = not Path(run_dir).exists()
    run_dir = ensure_out_dir(run_dir)
    try:
        with hold_lock(run_dir, LOCK_NAME):
            return _train(data_dir, run_dir, config, **kwargs)
    except BaseException:
        if created and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a run that failed before writing anything leaves no folder behind
        raise


# The parts of one run. `_train` calls them in order; they share these few records rather than
# one function's locals: what the run is (_Run), its data (_Data), what trains (_Parts), its
# batches (_Batches), where it reports (_Reports) and where the epochs stand (_State).

_LAST, _BEST, _FINAL = "last.safetensors", "best.safetensors", "model.safetensors"


@dataclass(frozen=True)
class _Run:
    """What every part of a run reads and none changes: its folder, settings, device and rank."""

    run_dir: Path
    config: TrainConfig
    device: torch.device
    rank: int
    world: int
    amp: torch.dtype | None  # the autocast dtype (None: float32 throughout)
    workers: int
    size_px: int
    normalise: Callable  # the model's input normalisation (build_normalise of its spec)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def channels_last(self) -> bool:
        return self.device.type == "cuda"  # the layout a GPU convolves fastest

    @property
    def maximise(self) -> bool:
        return self.config.select_metric != "val_loss"

    @property
    def spec(self):
        return get_spec(self.config.model)

    @property
    def last_path(self) -> Path:
        return self.run_dir / _LAST

    @property
    def best_path(self) -> Path:
        return self.run_dir / _BEST

    @property
    def final_path(self) -> Path:
        return self.run_dir / _FINAL


@dataclass
class _Data:
    """The run's crops: the manifest's training and validation rows, and the datasets that read them."""

    root: Path
    manifest: pd.DataFrame
    meta: dict  # the manifest's metadata: prepare's settings and provenance
    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    class_weights: np.ndarray
    train_set: torch.utils.data.Dataset | None = None  # opened after the model (see _train)
    val_set: torch.utils.data.Dataset | None = None

    @property
    def margin(self) -> float:
        return float(self.meta.get("margin", DEFAULT_MARGIN))


@dataclass
class _Parts:
    """The model and what trains it: what ``last.safetensors`` saves and a resume restores."""

    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler | None  # float16 only
    loss_fn: torch.nn.Module
    net: torch.nn.Module | None = None  # the model as trained (DDP, compiled), wrapped after a resume restores it


@dataclass
class _Batches:
    """The training batches and the generators each epoch reseeds, so that a resumed run repeats an unbroken one."""

    batches: DeviceBatches
    sampler: torch.utils.data.Sampler
    order: torch.Generator  # the sampler's
    augment: torch.Generator
    synthesize: torch.Generator

    def start_epoch(self, run: _Run, epoch: int) -> None:
        """Seed the epoch's order, augmentation and self-blending from the run's seed, the epoch and the rank."""
        self.order.manual_seed(run.config.seed + epoch)
        self.augment.manual_seed(_augment_seed(run.config.seed, epoch, run.rank))
        self.synthesize.manual_seed(_augment_seed(run.config.seed, epoch, run.rank, "self-blend"))
        if run.world > 1:
            self.sampler.set_epoch(epoch)


@dataclass
class _Reports:
    """Where the run reports: what every checkpoint records, TensorBoard, the progress meter and the callbacks."""

    base_meta: dict
    meter: ProgressMeter
    epoch_work: int  # one epoch's training and validation, in the meter's weighted units
    val_work: int  # one pass over the validation split
    writer: torch.utils.tensorboard.SummaryWriter | None  # rank 0's
    on_epoch: Callable[[dict], None] | None
    on_step: Callable[[int, int, int], None] | None


@dataclass
class _State:
    """Where the epochs stand: what ``last.safetensors`` records for a resume (``progress`` and ``history``)."""

    best_metric: float
    epoch: int = 0  # the last epoch completed
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best, for early stopping
    history: list[dict] = dataclasses.field(default_factory=list)

    def progress(self) -> dict:
        return {
            "epoch": self.epoch,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
        }


def _train(
    data_dir: str | Path,
    run_dir: str | Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    epochs: int | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int, int], None] | None = None,
    on_cache: Callable[[CropCache], None] | None = None,
    on_cache_progress: Callable[[int, int], None] | None = None,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """The training run itself (its folder already locked by :func:`train`).

    Args:
        data_dir: a ``prepare`` output folder (or its ``manifest.parquet``).
        run_dir: where checkpoints, ``metrics.csv`` and TensorBoard logs go.
        config: see :class:`TrainConfig`; with ``resume`` the run's own recorded config is used.
        resume: continue the run in ``run_dir`` from its last completed epoch.
        epochs: with ``resume``, train on until this many epochs in all: extends a finished run
            (one that had stopped early gets its early-stopping patience back).
        on_epoch: called on rank 0 with each epoch's metrics row.
        on_step: called on rank 0 with ``(epoch, step, steps)`` after each optimiser step.
        on_cache: called on rank 0 with the opened crop cache (its path, size, build time).
        on_cache_progress: called on rank 0 with ``(crops done, crops)`` while the cache is built.
        progress: called on rank 0 with a :class:`unmask.utils.progress.Progress` of the whole run
            (training, validation and calibration, in weighted units: a training image counts 3,
            a scored one 1; an upper bound while early stopping may end the run sooner), and
            of the crop cache while it is built.

    Returns:
        A :class:`TrainResult`; ``checkpoint`` is ``run_dir/model.safetensors``.
    """
    config, resume_meta = _check_run_folder(Path(run_dir), config, resume, epochs)
    run = _start(Path(run_dir), config)
    data = _read_data(run, data_dir)
    _seed_everything(config.seed)
    model = _create_model(run, pretrained=config.pretrained and resume_meta is None)
    if progress and run.is_main:
        on_cache_progress = _cache_progress(progress, on_cache_progress)
    _open_datasets(run, data, on_cache if run.is_main else None, on_cache_progress if run.is_main else None)
    parts = _training_parts(run, model, data.class_weights)
    state = _resume_state(run, parts, resume_meta, epochs)
    parts.net = _wrap(run, model)
    batches = _loaders(run, data)
    out = _reports(run, data, batches, state.epoch + 1, progress, on_epoch, on_step)
    if run.is_main and resume_meta is not None:
        _repair_best(run.best_path, run.last_path, resume_meta, out.base_meta)
    try:
        _run_epochs(run, data, parts, batches, state, out)
        return _finish(run, data, parts, state, out)
    finally:
        if out.writer is not None:
            out.writer.close()
        dist.cleanup()


def _check_run_folder(
    run_dir: Path, config: TrainConfig, resume: bool, epochs: int | None
) -> tuple[TrainConfig, dict | None]:
    """Refuse a folder holding another run, or nothing to resume; return the config to run and the resume metadata."""
    last_path, final_path = run_dir / _LAST, run_dir / _FINAL
    resume_meta = None
    if resume:
        if not last_path.is_file():
            raise SettingError(
                f"Nothing to resume in {run_dir}: it has no last.safetensors; start without resume=True", "resume"
            )
        resume_meta = read_metadata(last_path)
        config = config_from_recorded(resume_meta["config"])
        done = resume_meta["progress"]["epoch"]
        if epochs is not None and epochs <= done:
            raise SettingError(
                f"{run_dir} has trained {done} epochs already; to train on, pass epochs more than {done}", "epochs"
            )
        if epochs is None and final_path.exists():
            raise SettingError(
                f"{run_dir} finished after {done} epochs; to train on, pass resume=True with epochs N > {done}",
                "resume",
                "epochs",
            )
    elif last_path.exists() or final_path.exists():
        raise SettingError(
            f"{run_dir} already holds a training run; pass resume=True to continue it, or choose another run folder",
            "resume",
        )
    ensure_out_dir(run_dir)  # also removes half-written checkpoints of a killed run (up to the model's size each)
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    return config, resume_meta


def _start(run_dir: Path, config: TrainConfig) -> _Run:
    """Take this process's device and its place among the ranks (under torchrun, joining the others)."""
    device = dist.local_device(config.device)
    rank, world = dist.init_distributed(device)
    amp = autocast_dtype(config.precision, device)
    workers = config.workers
    if workers is None:  # on a CPU the step's threads use every core; a loader process beside them only competes
        workers = min(8, os.cpu_count() or 1) if device.type == "cuda" else 0
    spec = get_spec(config.model)
    return _Run(
        run_dir, config, device, rank, world, amp, workers, config.size or spec.default_size_px, build_normalise(spec)
    )


def _read_data(run: _Run, data_dir: str | Path) -> _Data:
    """Read the manifest's training and validation rows, and weigh the classes as the loss will see them."""
    config = run.config
    manifest, manifest_meta = read_manifest(data_dir)
    warn_upsampling(manifest_meta, run.size_px, is_main=run.is_main)
    data_root = Path(data_dir) if Path(data_dir).is_dir() else Path(data_dir).parent
    train_rows = select_label_level(select_split(manifest, config.protocol, "train"), config.label_level)
    if config.real_only:  # the SBI protocol: self-blended fakes are the only fakes (validation keeps the data's)
        train_rows = train_rows[train_rows["label"] == 0]
    val_rows = select_split(manifest, config.protocol, "val")
    class_weights = compute_class_weights(_expected_labels(train_rows, config), config.class_weights, beta=config.beta)
    return _Data(data_root, manifest, manifest_meta, train_rows, val_rows, class_weights)


def _create_model(run: _Run, pretrained: bool) -> torch.nn.Module:
    """Create the model first, so that missing ImageNet weights stop the run before the crop cache is built.

    A resumed run loads its own weights (``pretrained`` false): fetching ImageNet's first would be
    wasted, or fail offline.
    """
    config = run.config
    model = create_model(
        config.model, pretrained=pretrained and not config.weights, weights=config.weights if pretrained else None
    )
    if config.freeze_stages and config.pretrained:  # random early filters are nothing to keep
        model.freeze_stages(config.freeze_stages)
    model.to(run.device)
    if run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _open_datasets(
    run: _Run,
    data: _Data,
    on_cache: Callable[[CropCache], None] | None,
    on_cache_progress: Callable[[int, int], None] | None,
) -> None:
    """Open the crops as datasets; with self-blended fakes, give a validation split with no fakes blended ones."""
    config = run.config
    data.train_set, data.val_set = _datasets(
        data.root,
        data.manifest,
        data.train_rows,
        data.val_rows,
        run.spec,
        run.size_px,
        config,
        on_cache,
        on_cache_progress,
    )
    if config.synthesize == "sbi" and not (data.val_rows["label"] == 1).any():
        data.val_set, data.val_rows = with_blended_twins(
            data.val_set, data.val_rows, margin=data.margin, seed=config.seed
        )


def _training_parts(run: _Run, model: torch.nn.Module, class_weights: np.ndarray) -> _Parts:
    """Make what trains the model: the optimiser, its plateau schedule, the float16 loss scaler and the loss."""
    config = run.config
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        # Keras cuts after `patience` bad epochs, torch after more than `patience`: keep Keras's count.
        optimiser,
        mode="max" if run.maximise else "min",
        factor=config.lr_factor,
        patience=max(0, config.lr_patience - 1),
        threshold=1e-4,
        threshold_mode="abs",
        min_lr=config.min_lr,
    )
    scaler = torch.amp.GradScaler(run.device.type) if run.amp == torch.float16 else None
    loss_fn = create_loss(config.loss, torch.tensor(class_weights, dtype=torch.float32), gamma=config.focal_gamma).to(
        run.device
    )
    return _Parts(model, optimiser, scheduler, scaler, loss_fn)


def _resume_state(run: _Run, parts: _Parts, resume_meta: dict | None, epochs: int | None) -> _State:
    """Start afresh, or restore a resumed run's weights, optimiser, schedule and random state from ``last``."""
    if resume_meta is None:
        return _State(best_metric=-math.inf if run.maximise else math.inf)
    tensors = load_tensors(run.last_path)
    parts.model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    _restore_optimiser(parts.optimiser, tensors, resume_meta["optimiser"])
    parts.scheduler.load_state_dict(resume_meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    if run.device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], run.device)
    done = resume_meta["progress"]
    state = _State(done["best_metric"], done["epoch"], done["best_epoch"], done["bad_epochs"], resume_meta["history"])
    if parts.scaler is not None and resume_meta.get("scaler"):
        parts.scaler.load_state_dict(resume_meta["scaler"])
    if epochs is not None and run.config.early_stopping and state.bad_epochs >= run.config.early_stopping:
        logger.info("the run had stopped early at epoch %d; training on to epoch %d", state.epoch, run.config.epochs)
        state.bad_epochs = 0
    return state


def _wrap(run: _Run, model: torch.nn.Module) -> torch.nn.Module:
    """The model as trained: shared between the ranks under torchrun (DistributedDataParallel), compiled if asked."""
    net = model
    if run.world > 1:
        net = DistributedDataParallel(model, device_ids=[run.device] if run.device.type == "cuda" else None)
    if run.config.compile:
        net = torch.compile(net)
    return net


def _loaders(run: _Run, data: _Data) -> _Batches:
    """Make the training batches: sampled, self-blended, augmented and normalised on the device."""
    config = run.config
    order, augment, synthesize = torch.Generator(), torch.Generator(), torch.Generator()  # reseeded per epoch
    if run.world > 1:
        if config.batch_sampler == "balanced":
            raise SettingError(
                "batch_sampler balanced does not run under torchrun yet; use class_weights instead",
                "batch_sampler",
                "class_weights",
            )
        sampler = DistributedSampler(data.train_set, shuffle=True, seed=config.seed)
    elif config.batch_sampler == "balanced":
        sampler = balanced_sampler(data.train_set.labels, order)
    else:
        sampler = torch.utils.data.RandomSampler(data.train_set, generator=order)
    dataset, seeds = data.train_set, None
    if config.synthesize == "sbi":  # the twins are made in the loader's workers, each batch from a seed of its own
        dataset = BlendedCrops(
            data.train_set, face_ellipses(data.train_rows, run.size_px, data.margin), config.sbi_ratio
        )
        seeds = synthesize
    loader = batch_loader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        seeds=seeds,
        drop_last=len(sampler) > config.batch_size,
        workers=run.workers,
        device=run.device,
    )
    batches = DeviceBatches(
        loader,
        run.device,
        run.normalise,
        augment=BatchAugment(augment) if config.augment else None,
        channels_last=run.channels_last,
    )
    return _Batches(batches, sampler, order, augment, synthesize)


def _reports(
    run: _Run,
    data: _Data,
    batches: _Batches,
    start_epoch: int,
    progress: ProgressCallback | None,
    on_epoch: Callable[[dict], None] | None,
    on_step: Callable[[int, int, int], None] | None,
) -> _Reports:
    """Plan the run's progress, say what it trains on, and open rank 0's TensorBoard log and config.json."""
    config, val_crops = run.config, len(data.val_set)
    # The whole run's work, weighted by cost: a training image (forward and backward) as 3 scored ones.
    steps = min(len(batches.batches), config.max_steps) if config.max_steps else len(batches.batches)
    epoch_work = 3 * steps * config.batch_size + val_crops
    meter = ProgressMeter(
        progress if run.is_main else None,
        "train",
        config.epochs * epoch_work + val_crops,
        done=(start_epoch - 1) * epoch_work,
    )
    logger.info(
        "training %s at %d px on %s (%s protocol): %d training crops, %d validation crops, %d steps of %d "
        "per epoch, class weights %s",
        config.model,
        run.size_px,
        run.device,
        config.protocol,
        len(data.train_set),
        val_crops,
        steps,
        config.batch_size,
        np.round(data.class_weights, 3).tolist(),
    )
    base_meta, writer = _base_meta(run, data), None
    if run.is_main:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run.run_dir / "tensorboard"), purge_step=start_epoch)
        with write_atomic(run.run_dir / "config.json", "w") as fh:
            json.dump(base_meta, fh, indent=1)
    return _Reports(base_meta, meter, epoch_work, val_crops, writer, on_epoch, on_step)


def _base_meta(run: _Run, data: _Data) -> dict:
    """What every checkpoint of the run records: the model, the settings, the data and where it ran."""
    config, meta = run.config, data.meta
    left_out = ("root", "shard", "unmask_version", "merged_from", "provenance", "shard_provenance")
    return {
        "spec": asdict(run.spec),
        "size_px": run.size_px,
        "config": json.loads(json.dumps(asdict(config))),
        "class_weights": data.class_weights.tolist(),
        "data": {
            "manifest": str(Path(data.root).resolve()),
            "dataset": meta.get("dataset"),
            "protocol": config.protocol,
            "train_crops": len(data.train_set),
            "val_crops": len(data.val_set),
            "val_self_blended": int((data.val_rows["method"] == SBI_METHOD).sum()),
            "prepare": {k: v for k, v in meta.items() if k not in left_out},
            "prepare_provenance": meta.get("provenance"),
            "splits": split_sizes(data.manifest, config.protocol),
        },
        "provenance": collect_provenance(run.device),
    }


def _run_epochs(run: _Run, data: _Data, parts: _Parts, batches: _Batches, state: _State, out: _Reports) -> None:
    """Train epoch after epoch, each validated and saved, until the last one or an early stop."""
    config = run.config
    for epoch in range(state.epoch + 1, config.epochs + 1):
        row = _one_epoch(run, data, parts, batches, out, epoch)
        improved = _record_epoch(run, parts, state, row)
        if run.is_main:
            _save_epoch(run, parts, state, row, improved, out)
        if config.early_stopping and state.bad_epochs >= config.early_stopping:
            logger.info("no better %s for %d epochs: stopping early", config.select_metric, state.bad_epochs)
            out.meter.total = out.meter.done + out.val_work
            break


def _one_epoch(run: _Run, data: _Data, parts: _Parts, batches: _Batches, out: _Reports, epoch: int) -> dict:
    """Train one epoch and validate it; return its row of ``metrics.csv``."""
    config, started, stage = run.config, time.perf_counter(), f"epoch {epoch}/{run.config.epochs}"
    batches.start_epoch(run, epoch)  # the epoch's order and augmentation, resumable

    def step_done(step: int, steps: int) -> None:
        out.meter.advance(3 * config.batch_size, stage=f"{stage}: training")
        if out.on_step and run.is_main:
            out.on_step(epoch, step, steps)

    train_loss, train_labels, train_scores = train_one_epoch(
        parts.net,
        batches.batches,
        parts.loss_fn,
        parts.optimiser,
        run.device,
        max_steps=config.max_steps,
        amp=run.amp,
        scaler=parts.scaler,
        on_step=step_done,
    )
    train_loss = float(np.mean(dist.gather(train_loss)))
    dist.sync_buffers(parts.model)
    val_logits, val_labels = _score_validation(run, parts.model, data, out, f"{stage}: validation")
    out.meter.done = epoch * out.epoch_work  # exact at each epoch's end (the last batch may be short)
    val_p = p_fake(val_logits)
    return {
        "epoch": epoch,
        "lr": parts.optimiser.param_groups[0]["lr"],
        "train_loss": train_loss,
        **{f"train_{k}": v for k, v in basic_metrics(train_labels, train_scores).items()},
        # The training objective (weights, focal term) on validation data: the two
        # losses compare like with like, and --select-metric val_loss picks by it.
        "val_loss": validation_loss(parts.loss_fn, val_logits, val_labels, run.device),
        **{f"val_{k}": v for k, v in basic_metrics(val_labels, val_p).items()},
        "seconds": time.perf_counter() - started,
    }


def _score_validation(
    run: _Run, model: torch.nn.Module, data: _Data, out: _Reports, stage: str
) -> tuple[np.ndarray, np.ndarray]:
    """Score the validation split (``(logits, labels)``), counting every rank's batches into the run's progress."""
    return score_dataset(
        model,
        data.val_set,
        run.device,
        batch_size=run.config.batch_size,
        workers=run.workers,
        amp=run.amp,
        normalise=run.normalise,
        channels_last=run.channels_last,
        on_batch=lambda n: out.meter.advance(n * run.world, stage=stage),
    )


def _record_epoch(run: _Run, parts: _Parts, state: _State, row: dict) -> bool:
    """Step the learning-rate schedule on the epoch's metric and count it towards early stopping; True: a new best."""
    logger.debug("epoch %d: %s", row["epoch"], {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()})
    metric = row[run.config.select_metric]
    if math.isnan(metric):
        raise SettingError(
            f"{run.config.select_metric} is undefined: the validation split holds one class only; "
            "use select_metric val_acc or another protocol",
            "select_metric",
            "protocol",
        )
    improved = metric > state.best_metric if run.maximise else metric < state.best_metric
    parts.scheduler.step(metric)
    if improved:
        state.best_metric, state.best_epoch, state.bad_epochs = metric, row["epoch"], 0
    else:
        state.bad_epochs += 1
    state.epoch = row["epoch"]
    state.history.append(row)
    return improved


def _save_epoch(run: _Run, parts: _Parts, state: _State, row: dict, improved: bool, out: _Reports) -> None:
    """Save the epoch on rank 0: ``last`` (all a resume needs), ``best`` if it is, metrics.csv and TensorBoard."""
    # last before best: a kill between the two leaves a best one epoch behind, which
    # the resume repairs from last (see _repair_best); the other order cannot be repaired.
    state_dict = {f"model.{k}": v for k, v in parts.model.state_dict().items()}
    optim_tensors, optim_meta = _optimiser_tensors(parts.optimiser)
    rng = {"rng.torch": torch.get_rng_state()}
    if run.device.type == "cuda":
        rng["rng.cuda"] = torch.cuda.get_rng_state(run.device)
    save_checkpoint(
        run.last_path,
        {**state_dict, **optim_tensors, **rng},
        {
            **out.base_meta,
            "optimiser": optim_meta,
            "scheduler": parts.scheduler.state_dict(),
            "history": state.history,
            "scaler": parts.scaler.state_dict() if parts.scaler is not None else None,
            "progress": state.progress(),
        },
    )
    if improved:
        save_checkpoint(run.best_path, state_dict, {**out.base_meta, "epoch": row["epoch"], "val": row})
    _write_history(run.run_dir / "metrics.csv", state.history)
    for key, value in row.items():
        if key != "epoch":
            out.writer.add_scalar(key.replace("_", "/", 1), value, row["epoch"])
    out.writer.flush()
    if out.on_epoch:
        out.on_epoch(row)


def _finish(run: _Run, data: _Data, parts: _Parts, state: _State, out: _Reports) -> TrainResult:
    """Calibrate the best weights, write them as the run's checkpoint with its model card, and say what came out."""
    dist.barrier()
    best = load_tensors(run.best_path)
    best_epoch = read_metadata(run.best_path)["epoch"]  # the file is the truth, even after a resume
    parts.model.load_state_dict({k.removeprefix("model."): v for k, v in best.items()})
    fitted, val = _calibrate(run, data, parts.model, out, best_epoch)
    history = state.history
    if run.is_main:
        base = out.base_meta
        record = fitted.replace(
            prepare=base["data"]["prepare"],
            config=base["config"],
            provenance=base["provenance"],
            unmask_version=__version__,
            data={
                **{k: v for k, v in base["data"].items() if k != "prepare"},
                "videos": record_videos(data.train_rows, data.val_rows),
            },
            val={
                "at_threshold": val["at_threshold"],
                "history": history[best_epoch - 1] if history else None,
                "reliability": val["reliability"],
            },
            train={
                "epoch": best_epoch,
                "epochs_run": len(history),
                "select_metric": run.config.select_metric,
                "best_metric": state.best_metric,
                "class_weights": base["class_weights"],
            },
        )
        save_checkpoint(run.final_path, best, record.to_metadata())
        write_model_card(run.run_dir, record)
    dist.barrier()
    out.meter.finish()
    return TrainResult(
        run.run_dir,
        run.final_path,
        best_epoch,
        state.best_metric,
        fitted.temperature,
        fitted.bias,
        fitted.threshold,
        history,
    )


def _calibrate(
    run: _Run, data: _Data, model: torch.nn.Module, out: _Reports, best_epoch: int
) -> tuple[CheckpointRecord, dict]:
    """Fit calibration and the cost-based threshold on the validation split: the record of what
    inference needs (the run's provenance is added by :func:`_finish`); also return how they do there."""
    out.meter.report("calibration")
    val_logits, val_labels = _score_validation(run, model, data, out, "calibration")
    calibration = fit_calibration(val_logits, val_labels, data.val_rows["video_id"].to_numpy())
    logger.info("calibrating epoch %d's weights on %d validation crops", best_epoch, len(data.val_rows))
    fitted = CheckpointRecord(
        spec=run.spec,
        size_px=run.size_px,
        temperature=calibration["temperature"],
        bias=calibration["bias"],
        costs=run.config.costs,
        threshold=run.config.costs.threshold,
        calibration=calibration,
    )
    frames = data.val_rows[["video_id", "label", "method", "frame_index", "track_id"]].reset_index(drop=True)
    frames["p_fake"] = calibrated_p_fake(val_logits, fitted)
    fitted = fitted.replace(video_calibration=fit_video_calibration(frames, calibration["prior_fake"]))
    val_at_threshold = basic_metrics(val_labels, frames["p_fake"], fitted.threshold)
    for level, health in (
        ("frame", calibration["health"]),
        ("video (mean)", fitted.video_calibration["mean"]["health"]),
    ):
        if not health.get("trusted"):
            logger.warning("%s calibration rests on little data (%s)", level, health.get("note"))
    video_scores = aggregate_videos(frames, "mean")
    video_p_fake = calibrate_video_scores(video_scores["p_fake"], fitted)
    val_reliability = {
        "frame": reliability(val_labels, frames["p_fake"]),
        "video": reliability(video_scores["label"], video_p_fake),
    }
    return fitted, {"at_threshold": val_at_threshold, "reliability": val_reliability}

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
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, WeightedRandomSampler

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
from unmask.decision.calibration import (calibrate_video_scores, calibrated_p_fake, fit_calibration,
                                        fit_video_calibration, p_fake)
from unmask.decision.checkpoint import load_tensors, read_metadata, save_checkpoint
from unmask.training.config import TrainConfig, config_from_recorded
from unmask.training.cost import compute_class_weights, create_loss
from unmask.training.augment import BatchAugment
from unmask.training.cache import CachedCropDataset, CropCache, open_crop_cache
from unmask.data.crops import CropDataset, DeviceBatches, batch_loader
from unmask.training.sbi import SBI_METHOD, SelfBlendTwins, face_ellipses, with_blended_twins
from unmask.utils.atomic import write_atomic
from unmask.utils.outdir import ensure_out_dir, hold_lock
from unmask.utils.provenance import collect_provenance
from unmask.utils.progress import Progress, ProgressCallback, ProgressMeter

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"  # in the run folder while a run writes there

HISTORY_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "train_auc", "train_f1",
                  "val_loss", "val_acc", "val_auc", "val_f1", "seconds"]


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


def train_one_epoch(model, loader, loss_fn, optimiser, device, *, max_steps: int = 0, amp: torch.dtype | None = None,
                    scaler: torch.amp.GradScaler | None = None,
                    on_step: Callable[[int, int], None] | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """One pass over ``loader``; returns ``(mean loss, labels, p_fake)`` of the batches seen.

    ``amp`` is the autocast dtype (``None``: full precision); ``scaler`` scales float16 losses.
    Losses and scores stay on the device until the epoch ends: a GPU is never made to wait
    for the host mid-epoch.
    """
    model.train()
    total, seen, labels, scores = torch.zeros((), dtype=torch.float64, device=device), 0, [], []
    steps = min(len(loader), max_steps) if max_steps else len(loader)
    for step, (x, y, _) in enumerate(loader):
        if step >= steps:
            break
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
    logger.warning("%s is behind the resume state (a kill between two writes); writing it again from %s",
                   best_path.name, last_path.name)
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
        raise SettingError("synthesize sbi makes its fakes from real faces, and the training split has none",
                           "synthesize")
    return np.concatenate([labels, np.ones(int(round(config.sbi_ratio * reals)), dtype=np.int64)])


def _datasets(data_root: Path, manifest, train_rows, val_rows, spec, size_px: int, config: TrainConfig,
              on_cache: Callable[[CropCache], None] | None, on_cache_progress: Callable[[int, int], None] | None):
    """Train and validation sets of ``uint8`` images at ``size_px``: from the crop cache, or the PNGs."""
    if not config.cache:
        resize = build_resize(spec, size_px)
        return CropDataset(train_rows, data_root, resize), CropDataset(val_rows, data_root, resize)
    cache = open_crop_cache(data_root, list(manifest["crop_path"]), spec, size_px, cache_dir=config.cache_dir,
                            progress=on_cache_progress)
    logger.info("crop cache %s: %.2f GB%s", cache.path, cache.nbytes / 1e9,
                f", built in {cache.built_s:.1f} s" if cache.built_s else "")
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
        logger.warning("the crops are %d px and the model's input %d px: training enlarges every crop %.2fx, which "
                       "blurs what a detector looks for; prepare with size %d, or train with size %d",
                       crop_px, size_px, size_px / crop_px, size_px, crop_px)
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


def _train(data_dir: str | Path, run_dir: str | Path, config: TrainConfig, *, resume: bool = False,
           epochs: int | None = None,
           on_epoch: Callable[[dict], None] | None = None,
           on_step: Callable[[int, int, int], None] | None = None,
           on_cache: Callable[[CropCache], None] | None = None,
           on_cache_progress: Callable[[int, int], None] | None = None,
           progress: ProgressCallback | None = None) -> TrainResult:
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
    run_dir = Path(run_dir)
    last_path, best_path, final_path = run_dir / "last.safetensors", run_dir / "best.safetensors", run_dir / "model.safetensors"
    resume_meta = None
    if resume:
        if not last_path.is_file():
            raise SettingError(f"Nothing to resume in {run_dir}: it has no last.safetensors; start without resume=True",
                               "resume")
        resume_meta = read_metadata(last_path)
        config = config_from_recorded(resume_meta["config"])
        done = resume_meta["progress"]["epoch"]
        if epochs is not None and epochs <= done:
            raise SettingError(f"{run_dir} has trained {done} epochs already; to train on, pass epochs more than {done}",
                               "epochs")
        if epochs is None and final_path.exists():
            raise SettingError(f"{run_dir} finished after {done} epochs; to train on, pass resume=True with epochs "
                               f"N > {done}", "resume", "epochs")
    elif last_path.exists() or final_path.exists():
        raise SettingError(f"{run_dir} already holds a training run; pass resume=True to continue it, or choose "
                           "another run folder", "resume")
    ensure_out_dir(run_dir)  # also removes half-written checkpoints of a killed run (up to the model's size each)
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)

    device = dist.local_device(config.device)
    rank, world = dist.init_distributed(device)
    is_main = rank == 0
    amp = autocast_dtype(config.precision, device)
    channels_last = device.type == "cuda"
    workers = config.workers if config.workers is not None else (min(8, os.cpu_count() or 1) if device.type == "cuda" else 0)
    spec = get_spec(config.model)
    size_px = config.size or spec.default_size_px

    manifest, manifest_meta = read_manifest(data_dir)
    warn_upsampling(manifest_meta, size_px, is_main=rank == 0)
    data_root = Path(data_dir) if Path(data_dir).is_dir() else Path(data_dir).parent
    train_rows = select_label_level(select_split(manifest, config.protocol, "train"), config.label_level)
    if config.real_only:  # the SBI protocol: self-blended fakes are the only fakes (validation keeps the data's)
        train_rows = train_rows[train_rows["label"] == 0]
    val_rows = select_split(manifest, config.protocol, "val")
    class_weights = compute_class_weights(_expected_labels(train_rows, config), config.class_weights,
                                          beta=config.beta)

    _seed_everything(config.seed)
    # The model first: missing ImageNet weights stop the run before the crop cache is built. A
    # resumed run loads its own weights: fetching ImageNet's first would be wasted (or fail offline).
    pretrained = config.pretrained and resume_meta is None
    model = create_model(config.model, pretrained=pretrained and not config.weights,
                         weights=config.weights if pretrained else None)
    model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if progress and is_main:
        on_cache_progress = _cache_progress(progress, on_cache_progress)
    train_set, val_set = _datasets(data_root, manifest, train_rows, val_rows, spec, size_px, config,
                                   on_cache if is_main else None, on_cache_progress if is_main else None)
    synthesize, synth_generator = None, torch.Generator()  # reseeded per epoch, like the sampler's
    if config.synthesize == "sbi":
        margin = float(manifest_meta.get("margin", DEFAULT_MARGIN))
        synthesize = SelfBlendTwins(face_ellipses(train_rows, size_px, margin), config.sbi_ratio, synth_generator)
        if not (val_rows["label"] == 1).any():
            val_set, val_rows = with_blended_twins(val_set, val_rows, margin=margin, seed=config.seed)
    normalise = build_normalise(spec)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    maximise = config.select_metric != "val_loss"
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        # Keras cuts after `patience` bad epochs, torch after more than `patience`: keep Keras's count.
        optimiser, mode="max" if maximise else "min", factor=config.lr_factor, patience=max(0, config.lr_patience - 1),
        threshold=1e-4, threshold_mode="abs", min_lr=config.min_lr)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    loss_fn = create_loss(config.loss, torch.tensor(class_weights, dtype=torch.float32), gamma=config.focal_gamma).to(device)

    start_epoch, best_metric, best_epoch, bad_epochs, history = 1, -math.inf if maximise else math.inf, 0, 0, []
    if resume_meta is not None:
        tensors = load_tensors(last_path)
        model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
        _restore_optimiser(optimiser, tensors, resume_meta["optimiser"])
        scheduler.load_state_dict(resume_meta["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        state = resume_meta["progress"]
        start_epoch, best_metric, best_epoch, bad_epochs = state["epoch"] + 1, state["best_metric"], state["best_epoch"], state["bad_epochs"]
        history = resume_meta["history"]
        if scaler is not None and resume_meta.get("scaler"):
            scaler.load_state_dict(resume_meta["scaler"])
        if epochs is not None and config.early_stopping and bad_epochs >= config.early_stopping:
            logger.info("the run had stopped early at epoch %d; training on to epoch %d", state["epoch"], config.epochs)
            bad_epochs = 0
    net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) if world > 1 else model
    if config.compile:
        net = torch.compile(net)

    generator = torch.Generator()
    if world > 1:
        if config.batch_sampler == "balanced":
            raise SettingError("batch_sampler balanced does not run under torchrun yet; use class_weights instead",
                               "batch_sampler", "class_weights")
        sampler = DistributedSampler(train_set, shuffle=True, seed=config.seed)
    elif config.batch_sampler == "balanced":
        sampler = balanced_sampler(train_set.labels, generator)
    else:
        sampler = torch.utils.data.RandomSampler(train_set, generator=generator)
    loader = batch_loader(train_set, batch_size=config.batch_size, sampler=sampler,
                          drop_last=len(sampler) > config.batch_size, workers=workers, device=device)
    augment_generator = torch.Generator()  # reseeded per epoch, like the sampler's
    batches = DeviceBatches(loader, device, normalise, augment=BatchAugment(augment_generator) if config.augment else None,
                            channels_last=channels_last, synthesize=synthesize)

    # The whole run's work, weighted by cost: a training image (forward and backward) as 3 scored ones.
    steps = min(len(batches), config.max_steps) if config.max_steps else len(batches)
    epoch_work, val_work = 3 * steps * config.batch_size + len(val_set), len(val_set)
    meter = ProgressMeter(progress if is_main else None, "train", config.epochs * epoch_work + val_work,
                          done=(start_epoch - 1) * epoch_work)

    def on_val_batch(items, stage):
        meter.advance(items * world, stage=stage)

    logger.info("training %s at %d px on %s (%s protocol): %d training crops, %d validation crops, %d steps of %d "
                "per epoch, class weights %s", config.model, size_px, device, config.protocol, len(train_set),
                len(val_set), steps, config.batch_size, np.round(class_weights, 3).tolist())
    writer = None
    base_meta = {
        "spec": asdict(spec), "size_px": size_px, "config": json.loads(json.dumps(asdict(config))),
        "class_weights": class_weights.tolist(),
        "data": {"manifest": str(Path(data_root).resolve()), "dataset": manifest_meta.get("dataset"),
                 "protocol": config.protocol, "train_crops": len(train_set), "val_crops": len(val_set),
                 "val_self_blended": int((val_rows["method"] == SBI_METHOD).sum()),
                 "prepare": {k: v for k, v in manifest_meta.items() if k not in ("root", "shard", "unmask_version",
                                                                                   "merged_from", "provenance",
                                                                                   "shard_provenance")},
                 "prepare_provenance": manifest_meta.get("provenance"),
                 "splits": split_sizes(manifest, config.protocol)},
        "provenance": collect_provenance(device),
    }
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_epoch)
        with write_atomic(run_dir / "config.json", "w") as fh:
            json.dump(base_meta, fh, indent=1)
        if resume_meta is not None:
            _repair_best(best_path, last_path, resume_meta, base_meta)

    try:
        for epoch in range(start_epoch, config.epochs + 1):
            started = time.perf_counter()
            generator.manual_seed(config.seed + epoch)  # the epoch's order and augmentation, resumable
            augment_generator.manual_seed(_augment_seed(config.seed, epoch, rank))
            synth_generator.manual_seed(_augment_seed(config.seed, epoch, rank, "self-blend"))
            if world > 1:
                sampler.set_epoch(epoch)
            def step_cb(s, n, e=epoch):
                meter.advance(3 * config.batch_size, stage=f"epoch {e}/{config.epochs}: training")
                if on_step and is_main:
                    on_step(e, s, n)

            train_loss, train_labels, train_scores = train_one_epoch(
                net, batches, loss_fn, optimiser, device, max_steps=config.max_steps, amp=amp, scaler=scaler,
                on_step=step_cb)
            train_loss = float(np.mean(dist.gather(train_loss)))
            dist.sync_buffers(model)
            val_logits, val_labels = score_dataset(
                model, val_set, device, batch_size=config.batch_size, workers=workers, amp=amp, normalise=normalise,
                channels_last=channels_last, on_batch=lambda n, e=epoch: on_val_batch(n, f"epoch {e}/{config.epochs}: validation"))
            meter.done = epoch * epoch_work  # exact at each epoch's end (the last batch may be short)
            val_p = p_fake(val_logits)
            row = {"epoch": epoch, "lr": optimiser.param_groups[0]["lr"], "train_loss": train_loss,
                   **{f"train_{k}": v for k, v in basic_metrics(train_labels, train_scores).items()},
                   # The training objective (weights, focal term) on validation data: the two
                   # losses compare like with like, and --select-metric val_loss picks by it.
                   "val_loss": validation_loss(loss_fn, val_logits, val_labels, device),
                   **{f"val_{k}": v for k, v in basic_metrics(val_labels, val_p).items()},
                   "seconds": time.perf_counter() - started}
            logger.debug("epoch %d: %s", epoch, {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()})
            metric = row[config.select_metric]
            if math.isnan(metric):
                raise SettingError(f"{config.select_metric} is undefined: the validation split holds one class only; "
                                   "use select_metric val_acc or another protocol", "select_metric", "protocol")
            improved = metric > best_metric if maximise else metric < best_metric
            scheduler.step(metric)
            if improved:
                best_metric, best_epoch, bad_epochs = metric, epoch, 0
            else:
                bad_epochs += 1
            history.append(row)
            if is_main:
                # last before best: a kill between the two leaves a best one epoch behind, which
                # the resume repairs from last (see _repair_best); the other order cannot be repaired.
                state_dict = {f"model.{k}": v for k, v in model.state_dict().items()}
                optim_tensors, optim_meta = _optimiser_tensors(optimiser)
                rng = {"rng.torch": torch.get_rng_state()}
                if device.type == "cuda":
                    rng["rng.cuda"] = torch.cuda.get_rng_state(device)
                save_checkpoint(last_path, {**state_dict, **optim_tensors, **rng}, {
                    **base_meta, "optimiser": optim_meta, "scheduler": scheduler.state_dict(), "history": history,
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "progress": {"epoch": epoch, "best_metric": best_metric, "best_epoch": best_epoch,
                                 "bad_epochs": bad_epochs}})
                if improved:
                    save_checkpoint(best_path, state_dict, {**base_meta, "epoch": epoch, "val": row})
                _write_history(run_dir / "metrics.csv", history)
                for key, value in row.items():
                    if key != "epoch":
                        writer.add_scalar(key.replace("_", "/", 1), value, epoch)
                writer.flush()
                if on_epoch:
                    on_epoch(row)
            if config.early_stopping and bad_epochs >= config.early_stopping:
                logger.info("no better %s for %d epochs: stopping early", config.select_metric, bad_epochs)
                meter.total = meter.done + val_work
                break

        dist.barrier()
        # Calibrate the chosen weights on the validation split and fix the cost-based threshold.
        best = load_tensors(best_path)
        best_epoch = read_metadata(best_path)["epoch"]  # the file is the truth, even after a resume
        model.load_state_dict({k.removeprefix("model."): v for k, v in best.items()})
        meter.report("calibration")
        val_logits, val_labels = score_dataset(model, val_set, device, batch_size=config.batch_size, workers=workers,
                                               amp=amp, normalise=normalise, channels_last=channels_last,
                                               on_batch=lambda n: on_val_batch(n, "calibration"))
        calibration = fit_calibration(val_logits, val_labels, val_rows["video_id"].to_numpy())
        logger.info("calibrating epoch %d's weights on %d validation crops", best_epoch, len(val_rows))
        temperature, bias = calibration["temperature"], calibration["bias"]
        calibrated = {"temperature": temperature, "bias": bias, "calibration": calibration}
        frames = val_rows[["video_id", "label", "method", "frame_index", "track_id"]].reset_index(drop=True)
        frames["p_fake"] = calibrated_p_fake(val_logits, calibrated)
        video_calibration = fit_video_calibration(frames, calibration["prior_fake"])
        threshold = config.costs.threshold
        val_at_threshold = basic_metrics(val_labels, frames["p_fake"], threshold)
        for level, health in (("frame", calibration["health"]), ("video (mean)", video_calibration["mean"]["health"])):
            if not health.get("trusted"):
                logger.warning("%s calibration rests on little data (%s)", level, health.get("note"))
        video_scores = aggregate_videos(frames, "mean")
        val_reliability = {"frame": reliability(val_labels, frames["p_fake"]),
                           "video": reliability(video_scores["label"],
                                                calibrate_video_scores(video_scores["p_fake"], {**calibrated,
                                                                       "video_calibration": video_calibration}))}
        if is_main:
            final_meta = {
                **base_meta, "data": {**base_meta["data"], "videos": record_videos(train_rows, val_rows)},
                "epoch": best_epoch, "epochs_run": len(history), "select_metric": config.select_metric,
                "best_metric": best_metric, **calibrated, "video_calibration": video_calibration, "threshold": threshold,
                "costs": asdict(config.costs),
                "val": {"at_threshold": val_at_threshold, "history": history[best_epoch - 1] if history else None,
                        "reliability": val_reliability}}
            save_checkpoint(final_path, best, final_meta)
            write_model_card(run_dir, read_metadata(final_path))
        dist.barrier()
        meter.finish()
    finally:
        if writer is not None:
            writer.close()
        dist.cleanup()
    return TrainResult(run_dir, final_path, best_epoch, best_metric, temperature, bias, threshold, history)

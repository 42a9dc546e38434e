"""``unmask prepare``: dataset on disk -> face crops + manifest, resumable, in worker processes.

Each video is one task: sample frames, detect, track and crop faces, write the crops into a
temporary folder, move it into place, then record the video as done in ``DIR/.unmask/done/``.
A video counts as finished only once that record exists, so an interrupted run (Ctrl-C, kill,
power cut) never mistakes half-written crops for complete ones; started again, it skips the
finished videos whose crops are all still there (count and size), and does the others again.
The manifest is written last, atomically. One run at a time holds ``--out`` (a lock file in
``DIR/.unmask/``); worker processes end with the run that started them, even on ``kill -9``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from unmask import __version__
from unmask.data.config import RENAMED, SPLIT_SETTINGS, PrepareConfig
from unmask.data.crop_video import STATE_DIR, crop_video, crops_intact, init_worker, make_detector, video_key
from unmask.data.manifest import (
    CROP_COLUMNS,
    FACE_COLUMNS,
    MANIFEST_NAME,
    VIDEO_HASH_COLUMN,
    label_levels,
    read_manifest,
    write_manifest,
)
from unmask.data.sources import VideoItem, find_videos
from unmask.data.splits import DEFAULT_FRACTIONS, SEED, add_splits, check_fractions, split_counts, warn_empty_splits
from unmask.errors import SettingError, UnmaskError
from unmask.settings import upgrade_recorded
from unmask.utils.atomic import remove_stale_temps, write_atomic
from unmask.utils.outdir import ensure_out_dir, hold_lock
from unmask.utils.provenance import collect_provenance, file_fingerprint
from unmask.utils.progress import ProgressCallback, ProgressMeter
from unmask.utils.ray_cluster import check_engine, import_ray

logger = logging.getLogger(__name__)

FAILURES_NAME = "failures.csv"
FAILURE_COLUMNS = ["video_id", "path", "reason"]


@dataclass
class PrepareProgress:
    """Counts so far (reported through the progress callback after each video)."""

    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    crops: int = 0


@dataclass(frozen=True)
class PrepareSummary:
    """What a prepare run did."""

    out_dir: Path
    videos: int
    processed: int
    skipped: int
    failed: int
    crops: int
    seconds: float
    manifest: Path | None
    failures: Path | None
    excluded: int = 0  # videos the ``video`` protocol leaves out: their people are on different sides


def shard_items(items: list[VideoItem], shard: tuple[int, int] | None) -> list[VideoItem]:
    """The items of shard ``(k, n)``: decided by a hash of the video id, so every machine agrees."""
    if shard is None:
        return items
    k, n = shard
    # sha1, not crc32: CRC is linear, so ids of one pattern can all land in one shard.
    return [item for item in items if int(hashlib.sha1(item.video_id.encode()).hexdigest(), 16) % n == k - 1]


def output_names(shard: tuple[int, int] | None) -> tuple[str, str]:
    """``(manifest, failures)`` file names: shards get their own, so that they can share one --out."""
    if shard is None:
        return MANIFEST_NAME, FAILURES_NAME
    tag = f"shard-{shard[0]}-of-{shard[1]}"
    return f"manifest.{tag}.parquet", f"failures.{tag}.csv"


def _check_resumable(out_dir: Path, root: Path, config: PrepareConfig) -> None:
    """Refuse to mix crops made with other settings into ``out_dir``; record ours.

    The split settings may change: they decide the splits, made anew from the kept crops."""
    record_path = out_dir / STATE_DIR / "config.json"
    ours = json.loads(json.dumps({"root": str(root.resolve()), **config.recorded()}))
    if record_path.is_file():
        recorded = json.loads(record_path.read_text())
        # compared as today's fields: a setting recorded before it existed has the meaning it had then
        theirs = {"root": recorded.get("root"), **PrepareConfig.comparable(recorded)}
        changed = sorted(k for k in set(ours) | set(theirs) if k not in SPLIT_SETTINGS and ours.get(k) != theirs.get(k))
        if changed:
            raise SettingError(
                f"{out_dir} holds crops prepared with other settings ({', '.join(changed)}); "
                "prepare with the settings it was made with, use another output folder, or delete it to start over"
            )
    else:
        with write_atomic(record_path, "w") as fh:
            json.dump(ours, fh, indent=1)


def _file_size(item: VideoItem) -> int:
    try:
        return item.path.stat().st_size
    except OSError:
        return 0


def _run_pool(todo: list[VideoItem], out_dir: Path, config: PrepareConfig, record: Callable) -> None:
    """Crop ``todo`` in ``config.workers`` processes, at most one video in flight per worker.

    A worker that dies (a segfault in a decoder, the kernel's OOM killer) breaks the pool: the
    videos in flight are then tried again one at a time in a fresh process, the one that kills it
    again is recorded as failed, and the rest go on in a new pool.
    """
    # Largest files first, so that no long video is left running alone at the end.
    queue = sorted(todo, key=lambda item: -_file_size(item))
    suspects: list[VideoItem] = []
    context = mp.get_context("spawn")
    while queue or suspects:
        if suspects:
            item = suspects.pop(0)
            with ProcessPoolExecutor(
                1, mp_context=context, initializer=init_worker, initargs=(config, False, None, os.getpid())
            ) as pool:
                try:
                    record(*pool.submit(crop_video, item, out_dir, config).result())
                except BrokenProcessPool:
                    record(
                        item.video_id, None, "the worker process died on this video (a crash in a decoder or detector)"
                    )
            continue
        with ProcessPoolExecutor(
            config.workers, mp_context=context, initializer=init_worker, initargs=(config, True, None, os.getpid())
        ) as pool:
            in_flight: dict = {}
            try:
                while queue or in_flight:
                    while queue and len(in_flight) < config.workers:
                        item = queue.pop(0)
                        in_flight[pool.submit(crop_video, item, out_dir, config)] = item
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        item = in_flight.pop(future)
                        try:
                            outcome = future.result()
                        except BrokenProcessPool:
                            in_flight[future] = item
                            raise
                        record(*outcome)
            except BrokenProcessPool:
                suspects.extend(in_flight.values())
                logger.warning("a worker process died; retrying %d videos one at a time", len(in_flight))
            except BaseException:  # Ctrl-C, SIGTERM (the CLI turns it into KeyboardInterrupt), a bug
                pool.shutdown(wait=False, cancel_futures=True)
                for worker in mp.active_children():  # stop the videos in flight now, not when done
                    worker.terminate()
                raise


def prepare(
    root: str | Path,
    out_dir: str | Path,
    config: PrepareConfig,
    progress: ProgressCallback | None = None,
    *,
    engine: str = "local",
    address: str | None = None,
) -> PrepareSummary:
    """Turn the dataset at ``root`` into face crops and ``out_dir/manifest.parquet``.

    Finished videos of an earlier run into the same ``out_dir`` are kept and skipped. Videos that
    fail (unreadable, no frame, no face) are listed with the reason in ``out_dir/failures.csv``
    and the run goes on. With ``config.shard`` the outputs are ``manifest.shard-K-of-N.parquet``
    and ``failures.shard-K-of-N.csv``, so that shards may share one ``out_dir``.

    Args:
        root: dataset folder (for ``csv``: the CSV file).
        out_dir: where crops, manifest and failures go.
        config: see :class:`PrepareConfig`.
        progress: called with a :class:`unmask.utils.progress.Progress` after every video (``done``
            counts videos, ``info`` the faces found and the failures so far).
        engine: ``local`` (this machine, ``config.workers`` processes) or ``ray`` (the workers of a
            Ray cluster, :mod:`unmask.data.ray_prepare`; ``out_dir`` must be a folder they all see).
            The outputs are the same.
        address: with ``ray``, the cluster to join (``auto``, ``ray://HOST:PORT``); None starts
            one on this machine for the run.

    Returns:
        A :class:`PrepareSummary`; ``manifest`` is None when no video gave a face.

    Raises:
        DatasetLayoutError: ``root`` is missing, empty or not laid out as ``config.dataset``.
        UnmaskError: ``out_dir`` is a file, lies under one, cannot be written, holds crops made
            with other settings, or is in use by another run; or the detector cannot be built;
            or ``engine`` is unknown, or Ray missing. Nothing is written in these cases.
    """
    started = time.perf_counter()
    if check_engine(engine) == "ray":
        import_ray()  # one line on how to install it, before anything is written
    root, out_dir = Path(root), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UnmaskError(f"The output folder {out_dir} is a file; give a folder (it is created if missing)")
    listing = find_videos(root, config.dataset, **config.dataset_options)
    items = shard_items(listing.items, config.shard)
    in_shard = set(shard_items([item for item, _ in listing.skipped], config.shard))
    left_out = [(item, reason) for item, reason in listing.skipped if item in in_shard]
    if not items:
        logger.warning("shard %d/%d holds none of the videos; it writes an empty shard manifest", *config.shard)
    detector = make_detector(config)  # fails here, before anything is written, if it cannot be built
    ensure_out_dir(out_dir)
    state_dir = out_dir / STATE_DIR
    # A shard locks only itself (shards may share one --out), but never runs beside a whole run.
    lock_name = "lock" if config.shard is None else f"lock.shard-{config.shard[0]}-of-{config.shard[1]}"
    with hold_lock(state_dir, lock_name, excludes=("lock*",) if config.shard is None else ("lock",)):
        return _prepare_locked(root, out_dir, config, items, left_out, detector, started, progress, (engine, address))


def _prepare_locked(
    root: Path,
    out_dir: Path,
    config: PrepareConfig,
    items: list[VideoItem],
    left_out: list,
    detector,
    started: float,
    progress,
    engine: tuple[str, str | None],
) -> PrepareSummary:
    _check_resumable(out_dir, root, config)
    done_dir = out_dir / STATE_DIR / "done"
    done_dir.mkdir(parents=True, exist_ok=True)
    for folder in (out_dir / STATE_DIR, done_dir):  # scraps of writes a killed run left (ensure_out_dir: out_dir's)
        remove_stale_temps(folder)
    state = PrepareProgress(total=len(items))
    records, todo = _earlier_records(out_dir, items, state)
    state.failed += len(left_out)
    logger.info(
        "%d videos to prepare into %s (%d done by an earlier run, %d left out)",
        len(todo),
        out_dir,
        state.skipped,
        len(left_out),
    )
    meter = ProgressMeter(progress, "prepare", state.total, unit="video", done=state.skipped)
    if state.skipped:
        meter.report(f"{state.skipped} done before", faces=state.crops, failed=state.failed)
    read_errors, failed_now = _crop_videos(todo, out_dir, config, detector, state, records, meter, engine)

    manifest_name, failures_name = output_names(config.shard)
    failures = [
        {
            "video_id": item.video_id,
            "path": str(item.path),
            "reason": read_errors.get(item.video_id) or records.get(item.video_id, {}).get("reason"),
        }
        for item in items
    ]
    failures = [f for f in failures if f["reason"]] + [
        {"video_id": item.video_id, "path": str(item.path), "reason": reason} for item, reason in left_out
    ]
    failures_path = out_dir / failures_name
    with write_atomic(failures_path, "w") as fh:
        pd.DataFrame(failures, columns=FAILURE_COLUMNS).to_csv(fh, index=False)
    manifest_path, excluded = _write_prepared_manifest(root, out_dir / manifest_name, config, items, records)
    return PrepareSummary(
        out_dir,
        len(items),
        state.done - failed_now,
        state.skipped,
        state.failed,
        state.crops,
        time.perf_counter() - started,
        manifest_path,
        failures_path if failures else None,
        excluded,
    )


def _earlier_records(out_dir: Path, items: list[VideoItem], state: PrepareProgress) -> tuple[dict, list[VideoItem]]:
    """The records of ``items`` an earlier run finished (crops intact), counted into ``state``,
    and the items still to do (their scratch from a killed run removed)."""
    done_dir = out_dir / STATE_DIR / "done"
    records: dict[str, dict] = {}
    todo = []
    for item in items:
        path = done_dir / f"{video_key(item.video_id)}.json"
        record = json.loads(path.read_text()) if path.is_file() else None
        if record is not None and not crops_intact(out_dir, record):
            logger.warning(
                "%s: some of its crops are missing or changed since it was prepared; preparing it again", item.video_id
            )
            record = None
        if record is not None:
            records[item.video_id] = record
            state.skipped += 1
            state.crops += len(record["crops"])
            state.failed += record["reason"] is not None
        else:
            todo.append(item)
            # Scratch left by a killed run of this video (only ours: other shards may share out_dir).
            shutil.rmtree(out_dir / STATE_DIR / "partial" / video_key(item.video_id), ignore_errors=True)
    return records, todo


def _crop_videos(
    todo: list[VideoItem],
    out_dir: Path,
    config: PrepareConfig,
    detector,
    state: PrepareProgress,
    records: dict,
    meter: ProgressMeter,
    engine: tuple[str, str | None],
) -> tuple[dict[str, str], int]:
    """Crop ``todo`` (here, in worker processes, or on a Ray cluster: ``engine`` is ``(name,
    address)``), adding each video's record to ``records``.

    Returns:
        ``(read errors by video id, videos that failed in this run)``.
    """
    read_errors: dict[str, str] = {}
    failed_now = 0

    def record(video_id, crops, reason):
        nonlocal failed_now
        state.done += 1
        failed_now += reason is not None
        if crops is None:
            read_errors[video_id] = reason
        else:
            records[video_id] = {"crops": crops, "reason": reason}
            state.crops += len(crops)
        if reason is not None:
            state.failed += 1
            logger.info("%s failed: %s", video_id, reason)
        meter.advance(stage="videos", faces=state.crops, failed=state.failed)

    if engine[0] == "ray":
        from unmask.data.ray_prepare import crop_on_ray

        del detector
        crop_on_ray(sorted(todo, key=lambda item: -_file_size(item)), out_dir, config, record, address=engine[1])
    elif config.workers == 1 or len(todo) <= 1:
        init_worker(config, single_thread=False, detector=detector)
        for item in todo:
            record(*crop_video(item, out_dir, config))
    else:
        del detector
        _run_pool(todo, out_dir, config, record)
    return read_errors, failed_now


def _write_prepared_manifest(
    root: Path, path: Path, config: PrepareConfig, items: list[VideoItem], records: dict
) -> tuple[Path | None, int]:
    """Write the manifest of ``records`` (with splits, unless a shard) to ``path``.

    Returns:
        ``(the manifest, or None when no video gave a crop; videos the video split leaves out)``.
    """
    # Video fields come from this run's listing, crop fields from the records: a corrected label
    # or a newly added official list reaches the manifest without preparing the crops again.
    rows = [
        {**fields, **crop}
        for item in items
        if item.video_id in records
        for fields in [video_fields(item, config.dataset)]
        for crop in records[item.video_id]["crops"]
    ]
    if not rows and config.shard is None:  # an empty shard still counts when merging
        return None, 0
    metadata = {
        "unmask_version": __version__,
        "root": str(root.resolve()),
        **config.recorded(),
        "shard": list(config.shard) if config.shard else None,
        "provenance": collect_provenance(config.device),
    }
    df = pd.DataFrame(rows, columns=CROP_COLUMNS + FACE_COLUMNS + [VIDEO_HASH_COLUMN])
    df["label_level"] = label_levels(df)
    excluded = 0
    if config.shard is None:
        df = add_splits(df, seed=config.split_seed, fractions=config.split_fractions)
        metadata["splits"] = split_counts(df)
        warn_empty_splits(metadata["splits"], stacklevel=4)  # the caller of prepare()
        excluded = metadata["splits"].get("video", {}).get("excluded", 0)
    return write_manifest(df, path, json.loads(json.dumps(metadata, default=str))), excluded


def video_fields(item: VideoItem, dataset: str) -> dict:
    """The manifest columns that describe the video a crop comes from."""
    return {
        "dataset": item.dataset or dataset,
        "video_id": item.video_id,
        "video_path": str(item.path.resolve()),
        "label": item.label,
        "method": item.method,
        "source_id": item.source_ids[0],
        "source_ids": "|".join(item.source_ids),
        "official_split": item.official_split,
        VIDEO_HASH_COLUMN: file_fingerprint(item.path),
    }


def _shard_manifests(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted(path.glob("manifest.shard-*-of-*.parquet"))
    return found or [path / MANIFEST_NAME]


def _check_shard_set(shards: list[tuple[int, int]]) -> None:
    """Refuse ``(k, n)`` shards that are not each of one split's ``n`` shards exactly once."""
    total = {n for _, n in shards}
    if len(total) != 1:
        raise UnmaskError(
            f"The shards come from splits into different numbers of shards ({', '.join(map(str, sorted(total)))})"
        )
    n = total.pop()
    ks = sorted(k for k, _ in shards)
    if ks != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(ks))
        repeated = sorted({k for k in ks if ks.count(k) > 1})
        raise UnmaskError(
            f"Merge needs each of the {n} shards once; missing: {missing or 'none'}, repeated: {repeated or 'none'}"
        )


def merge_manifests(
    shard_dirs: list[str | Path], out_dir: str | Path, *, split_seed: int | None = None, split_fractions=None
) -> Path:
    """Combine the manifests of ``prepare --shard K/N`` runs into one, with splits over all of them.

    The shards' ``failures.shard-K-of-N.csv`` are combined into ``out_dir/failures.csv`` too, so
    that no failed video is forgotten when the shard folders are cleaned up.

    Args:
        shard_dirs: shard output folders (each may hold several shard manifests when the shards
            shared one ``--out``) or shard manifest files.
        out_dir: where the combined ``manifest.parquet`` goes; crops stay where they are and
            their paths are rewritten relative to it.
        split_seed, split_fractions: as :class:`PrepareConfig`'s; default the shards' own.

    Raises:
        UnmaskError: shards are missing or repeated, or were prepared with different settings.
    """
    out_dir = Path(out_dir)
    frames, settings, shards, failures, provenances = [], {}, [], [], []
    for path in (p for d in shard_dirs for p in _shard_manifests(Path(d))):
        df, meta = read_manifest(path, need_splits=False)
        failures_path = path.with_name(path.name.replace("manifest.", "failures.", 1)).with_suffix(".csv")
        if failures_path.is_file():
            failures.append(pd.read_csv(failures_path, dtype=str, keep_default_na=False))
        if not meta.get("shard"):
            raise UnmaskError(f"{path} is not a shard manifest; merge the manifests of sharded prepare runs")
        shards.append(tuple(meta["shard"]))
        recorded = upgrade_recorded(
            {k: v for k, v in meta.items() if k not in ("shard", "unmask_version", "provenance")}, RENAMED
        )
        provenances.append(meta.get("provenance"))
        if settings and recorded != settings:
            changed = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
            raise UnmaskError(f"{path} was prepared with other settings ({', '.join(changed)}) than the other shards")
        settings = recorded
        rel = os.path.relpath(path.parent.resolve(), out_dir.resolve())
        df["crop_path"] = [Path(os.path.normpath(Path(rel) / p)).as_posix() for p in df["crop_path"]]
        frames.append(df.drop(columns=[c for c in df.columns if c.startswith("split_")]))
    _check_shard_set(shards)
    ensure_out_dir(out_dir)
    with write_atomic(out_dir / FAILURES_NAME, "w") as fh:
        pd.concat([pd.DataFrame(columns=FAILURE_COLUMNS), *failures], ignore_index=True).to_csv(fh, index=False)
    split_seed = settings.get("split_seed", SEED) if split_seed is None else split_seed
    split_fractions = check_fractions(
        settings.get("split_fractions", DEFAULT_FRACTIONS) if split_fractions is None else split_fractions
    )
    settings = {**settings, "split_seed": split_seed, "split_fractions": list(split_fractions)}
    merged = add_splits(pd.concat(frames, ignore_index=True), seed=split_seed, fractions=split_fractions)
    counts = split_counts(merged)
    warn_empty_splits(counts, stacklevel=2)  # the caller of merge_manifests()
    if counts.get("video", {}).get("excluded"):
        logger.warning(
            "the video split leaves out %d videos whose people are on different sides", counts["video"]["excluded"]
        )
    return write_manifest(
        merged,
        out_dir / MANIFEST_NAME,
        {
            **settings,
            "shard": None,
            "merged_from": [str(d) for d in shard_dirs],
            "splits": counts,
            "provenance": collect_provenance(),
            "shard_provenance": provenances,
        },
    )

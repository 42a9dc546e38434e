"""``unmask prepare``: dataset on disk -> face crops + manifest, resumable, in worker processes.

Each video is one task: sample frames, detect, track and crop faces, write the crops into a
temporary folder, move it into place, then record the video as done in ``DIR/.unmask/done/``.
A video counts as finished only once that record exists, so an interrupted run (Ctrl-C, kill,
power cut) never mistakes half-written crops for complete ones; started again, it skips the
finished videos. The manifest is written last, atomically.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from unmask import __version__
from unmask.data.crop_video import (
    STATE_DIR,
    PrepareConfig,
    crop_video,
    init_worker,
    video_key,
)
from unmask.data.manifest import MANIFEST_NAME, read_manifest, write_manifest
from unmask.data.sources import VideoItem, list_videos
from unmask.data.splits import add_splits
from unmask.errors import UnmaskError
from unmask.utils.atomic import write_atomic

logger = logging.getLogger(__name__)

FAILURES_NAME = "failures.csv"


@dataclass
class PrepareProgress:
    """Counts so far, handed to the progress callback after each video."""

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


def shard_items(items: list[VideoItem], shard: tuple[int, int] | None) -> list[VideoItem]:
    """The items of shard ``(k, n)``: decided by a hash of the video id, so every machine agrees."""
    if shard is None:
        return items
    k, n = shard
    # sha1, not crc32: CRC is linear, so ids of one pattern can all land in one shard.
    return [item for item in items if int(hashlib.sha1(item.video_id.encode()).hexdigest(), 16) % n == k - 1]


# --- the run -----------------------------------------------------------------------------------


def _check_resumable(out_dir: Path, root: Path, config: PrepareConfig) -> None:
    """Refuse to mix crops made with other settings into ``out_dir``; record ours."""
    record_path = out_dir / STATE_DIR / "config.json"
    ours = {"root": str(root.resolve()), **config.recorded(), "sampler": asdict(config.sampler)}
    ours = json.loads(json.dumps(ours))
    if record_path.is_file():
        theirs = json.loads(record_path.read_text())
        changed = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if changed:
            raise UnmaskError(
                f"{out_dir} holds crops prepared with other settings ({', '.join(changed)}); "
                "use another --out, or delete it to start over"
            )
    else:
        with write_atomic(record_path, "w") as fh:
            json.dump(ours, fh, indent=1)


def prepare(root: str | Path, out_dir: str | Path, config: PrepareConfig,
            progress: Callable[[PrepareProgress], None] | None = None) -> PrepareSummary:
    """Turn the dataset at ``root`` into face crops and ``out_dir/manifest.parquet``.

    Finished videos of an earlier run into the same ``out_dir`` are kept and skipped. Videos that
    fail (unreadable, no frame, no face) are listed with the reason in ``out_dir/failures.csv``
    and the run goes on.

    Args:
        root: dataset folder (for ``csv``: the CSV file).
        out_dir: where crops, manifest and failures go.
        config: see :class:`PrepareConfig`.
        progress: called with a :class:`PrepareProgress` after every video.

    Returns:
        A :class:`PrepareSummary`; ``manifest`` is None when no video gave a face.

    Raises:
        DatasetLayoutError: ``root`` is missing, empty or not laid out as ``config.dataset``.
    """
    started = time.perf_counter()
    root, out_dir = Path(root), Path(out_dir)
    items = shard_items(list_videos(root, config.dataset, **config.dataset_options), config.shard)
    if not items:
        raise UnmaskError(f"Shard {config.shard[0]}/{config.shard[1]} holds none of the videos; use fewer shards")
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_resumable(out_dir, root, config)
    shutil.rmtree(out_dir / STATE_DIR / "partial", ignore_errors=True)  # leftovers of a killed run
    done_dir = out_dir / STATE_DIR / "done"
    done_dir.mkdir(parents=True, exist_ok=True)

    state = PrepareProgress(total=len(items))
    rows_by_video: dict[str, list[dict]] = {}
    todo = []
    for item in items:
        record = done_dir / f"{video_key(item.video_id)}.json"
        if record.is_file():
            rows_by_video[item.video_id] = json.loads(record.read_text())
            state.skipped += 1
            state.crops += len(rows_by_video[item.video_id])
        else:
            todo.append(item)
    if progress and state.skipped:
        progress(state)

    failures: list[dict] = []
    by_id = {item.video_id: item for item in items}

    def record(video_id, rows, reason):
        state.done += 1
        if rows is None:
            state.failed += 1
            failures.append({"video_id": video_id, "path": str(by_id[video_id].path), "reason": reason})
            logger.info("%s failed: %s", video_id, reason)
        else:
            rows_by_video[video_id] = rows
            state.crops += len(rows)
        if progress:
            progress(state)

    workers = min(config.workers, max(1, len(todo)))
    if workers == 1:
        init_worker(config, single_thread=False)
        for item in todo:
            record(*crop_video(item, out_dir, config))
    else:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=init_worker,
                                 initargs=(config, True)) as pool:
            # Largest files first, so that no long video is left running alone at the end.
            largest_first = sorted(todo, key=lambda item: -item.path.stat().st_size)
            pending = {pool.submit(crop_video, item, out_dir, config) for item in largest_first}
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        record(*future.result())
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    failures_path = out_dir / FAILURES_NAME
    with write_atomic(failures_path, "w") as fh:
        pd.DataFrame(failures, columns=["video_id", "path", "reason"]).to_csv(fh, index=False)

    manifest_path = None
    rows = [row for item in items for row in rows_by_video.get(item.video_id, [])]
    if rows:
        metadata = {"unmask_version": __version__, "root": str(root.resolve()), **config.recorded(),
                    "shard": list(config.shard) if config.shard else None}
        metadata = json.loads(json.dumps(metadata, default=str))
        df = pd.DataFrame(rows)
        if config.shard is None:
            df = add_splits(df, seed=config.seed)
        manifest_path = write_manifest(df, out_dir / MANIFEST_NAME, metadata)
    return PrepareSummary(out_dir, len(items), state.done - state.failed, state.skipped, state.failed,
                          state.crops, time.perf_counter() - started, manifest_path,
                          failures_path if failures else None)


def merge_manifests(shard_dirs: list[str | Path], out_dir: str | Path, *, seed: int = 42) -> Path:
    """Combine the manifests of ``prepare --shard`` runs into one, with splits over all of them.

    Crops stay where they are; their paths are rewritten relative to ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames, metadata = [], {}
    for shard_dir in map(Path, shard_dirs):
        df, meta = read_manifest(shard_dir, need_splits=False)
        rel = os.path.relpath(shard_dir.resolve(), out_dir.resolve())
        df["crop_path"] = [Path(os.path.normpath(Path(rel) / p)).as_posix() for p in df["crop_path"]]
        frames.append(df.drop(columns=[c for c in df.columns if c.startswith("split_")]))
        metadata = {**meta, "shard": None, "merged_from": [str(d) for d in shard_dirs]}
    merged = pd.concat(frames, ignore_index=True)
    if merged.duplicated(["video_id", "frame_index", "track_id"]).any():
        raise UnmaskError("The shards overlap (a video appears twice); merge each shard once")
    return write_manifest(add_splits(merged, seed=seed), out_dir / MANIFEST_NAME, metadata)

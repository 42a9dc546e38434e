"""``prepare --engine ray``: the videos of a prepare run cropped by the workers of a Ray cluster.

Each worker builds its face step once and crops one video at a time with the local engine's own
:func:`~unmask.data.crop_video.crop_video`, which writes the crops and the video's done record into
``--out`` (a folder every node sees); the driver gets each video's outcome as it finishes and
records it as a local run does, so manifest, failures, resume and recorded settings are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from unmask.data.config import PrepareConfig
from unmask.data.crop_video import crop_video, init_worker
from unmask.data.sources import VideoItem
from unmask.utils.ray_cluster import ray_session, run_on_actors


def _start_worker(config: PrepareConfig, out_dir: Path) -> tuple[PrepareConfig, Path]:
    init_worker(config, single_thread=True)  # one core per worker, as the local engine's processes
    return config, out_dir


def _crop(state: tuple[PrepareConfig, Path], item: VideoItem):
    config, out_dir = state
    return crop_video(item, out_dir, config)


def crop_on_ray(
    todo: list[VideoItem], out_dir: Path, config: PrepareConfig, record: Callable, address: str | None = None
) -> None:
    """Crop ``todo`` on the Ray cluster at ``address`` (None: one started here for this run),
    calling ``record(video_id, crops, reason)`` here as each video finishes.

    ``config.workers`` above 1 sets the number of Ray workers; otherwise there is one per CPU of the
    cluster (per GPU when ``config.device`` names a CUDA device).
    """
    if not todo:
        return
    gpus = 1 if (config.device or "").startswith("cuda") else 0
    with ray_session(address):
        run_on_actors(
            _start_worker,
            (config, out_dir),
            _crop,
            todo,
            on_done=lambda item, outcome: record(*outcome),
            on_lost=lambda item, why: record(item.video_id, None, why),
            workers=config.workers if config.workers > 1 else None,
            gpus_per_worker=gpus,
        )

"""One video -> face crops on disk: the work a ``prepare`` worker process does.

Kept apart from :mod:`unmask.data.preparation` so that worker processes import only what they need
(no pandas, pyarrow or scikit-learn: that would add a second to every worker's start).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import cv2

from unmask.data.config import PrepareConfig
from unmask.data.sources import VideoItem
from unmask.errors import UnmaskError
from unmask.faces.crop import CROP_BOX_COLUMNS
from unmask.faces.detectors import LANDMARK_COLUMNS, create_detector
from unmask.faces.extract import FaceExtractor
from unmask.utils.atomic import fsync_path, write_atomic
from unmask.video.sampling import sample_frames

logger = logging.getLogger(__name__)

STATE_DIR = ".unmask"
CROPS_SUFFIX = ".crops"


def video_key(video_id: str) -> str:
    """A file name for ``video_id``'s resume record and scratch folder (distinct ids, distinct keys)."""
    return hashlib.sha1(video_id.encode()).hexdigest()[:24]


def crop_folder(video_id: str) -> str:
    """The folder of ``video_id``'s crops, relative to ``--out``: ``crops/<id>.crops``.

    Crop folders never nest: ``real/clip`` and ``real/clip/inner`` get ``crops/real/clip.crops``
    and ``crops/real/clip/inner.crops``, so that replacing one video's crops cannot touch
    another's. Only crop folders end in ``.crops``; a dataset folder whose name ends in ``.crops``
    or ``~`` gets a ``~`` appended, which keeps distinct ids apart.
    """
    *parents, leaf = video_id.split("/")
    parents = [p + "~" if p.endswith((CROPS_SUFFIX, "~")) else p for p in parents]
    return "/".join(["crops", *parents, leaf + CROPS_SUFFIX])


def make_detector(config: PrepareConfig):
    """The face detector ``config`` asks for (its first pass)."""
    return create_detector(
        config.detector, min_score=config.min_score, max_side_px=config.max_side, device=config.device
    )


def make_second_pass(config: PrepareConfig, detector):
    """The second pass ``config`` asks for, sharing ``detector``'s weights; None when it is off."""
    if not config.second_pass:
        return None
    side = config.second_pass_side
    return detector.with_settings(
        max_side_px=side, min_side_px=side, enhance=True, min_score=config.second_pass_min_score
    )


def make_near_pass(config: PrepareConfig, detector):
    """The third pass ``config`` asks for, sharing ``detector``'s weights; None when it is off.

    CLAHE on a 4x4 grid: its windows are a few face widths across, so each tile holds about a face
    (the 8x8 grid meant for whole frames found fewer faces and one false box on the hard set).
    """
    if not config.near_pass:
        return None
    return detector.with_settings(enhance=True, clahe_tiles=4, min_score=config.near_pass_min_score)


def make_small_face_pass(config: PrepareConfig, detector):
    """The small-face pass ``config`` asks for, sharing ``detector``'s weights; None when it is off.

    CLAHE on the default 8x8 grid: at 1920 px a tile is a few heads across, so a dim face gets its
    own contrast.
    """
    if not config.small_face_pass:
        return None
    return detector.with_settings(
        max_side_px=config.small_face_side,
        min_side_px=0,
        enhance=True,
        min_face_px=config.small_face_min_px,
        min_score=config.small_face_min_score,
    )


# --- work on one video (runs in a worker process) -------------------------------------------------

_EXTRACTOR: FaceExtractor | None = None
_PARENT_PID: int | None = None
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this worker when the prepare process that started it dies.

    Without it, a ``kill -9`` of ``prepare`` leaves the workers running (and writing into
    ``--out``) for good. Where ``prctl`` is missing (not Linux), :func:`crop_video` still checks
    the parent between videos.
    """
    global _PARENT_PID
    _PARENT_PID = parent_pid
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            logger.debug("prctl(PR_SET_PDEATHSIG) unavailable; checking the parent between videos")
    if os.getppid() != parent_pid:  # it died before the signal was armed
        os._exit(1)


def make_extractor(config: PrepareConfig, detector=None) -> FaceExtractor:
    """The face step ``config`` describes (detector and its later passes, margin, size, which faces
    to keep, gap bridging): the one definition prepare, explain and predict all use."""
    detector = detector or make_detector(config)
    return FaceExtractor(
        detector,
        margin=config.margin,
        size_px=config.size,
        keep=config.keep,
        second_pass=make_second_pass(config, detector),
        bridge_max_gap=config.bridge_max_gap,
        second_pass_probe=config.second_pass_probe,
        near_pass=make_near_pass(config, detector),
        small_face_pass=make_small_face_pass(config, detector),
        small_face_probe=config.small_face_probe,
    )


def init_worker(config: PrepareConfig, single_thread: bool, detector=None, parent_pid: int | None = None) -> None:
    """Build this process's face extractor once (``detector``: one already built, in-process runs).

    ``parent_pid``: in a worker process, the prepare process's pid: the worker ends when it dies.
    """
    global _EXTRACTOR
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    if single_thread:  # one process per core: keep OpenCV and torch from fighting over cores
        cv2.setNumThreads(1)
        if "torch" in sys.modules:  # only a torch backend loads it; importing it here costs seconds
            sys.modules["torch"].set_num_threads(1)
    _EXTRACTOR = make_extractor(config, detector)


def crop_video(item: VideoItem, out_dir: Path, config: PrepareConfig) -> tuple[str, list[dict] | None, str | None]:
    """Crop the faces of one video into ``out_dir/crops/<video id>.crops/`` and record it as done.

    Returns:
        ``(video_id, crops, reason)``: ``crops`` is None when the video could not be read (it will
        be tried again by a later run); with no face found, ``crops`` is ``[]`` and the video is
        recorded as done; ``reason`` says what went wrong, if anything.
    """
    if _PARENT_PID is not None and os.getppid() != _PARENT_PID:
        os._exit(1)  # prepare is gone: nobody would record this video's result
    try:
        frames = sample_frames(item.path, config.sampler)
        crops = _EXTRACTOR(frames)
        rows, sizes, reason = [], [], None
        if crops:
            rows, sizes = _write_crops(item, crops, out_dir, config)
        else:
            reason = f"no face found in {len(frames)} sampled frames"
        # The crop sizes let a resumed run check cheaply that the crops it skips are still there.
        record = {
            "video_id": item.video_id,
            "frames": len(frames),
            "stream": frames[0].stream_index,
            "reason": reason,
            "crops": rows,
            "crop_bytes": sizes,
        }
        with write_atomic(out_dir / STATE_DIR / "done" / f"{video_key(item.video_id)}.json", "w") as fh:
            json.dump(record, fh)
        return item.video_id, rows, reason
    except UnmaskError as exc:
        return item.video_id, None, str(exc)
    except Exception as exc:  # one odd file must not end a long run: record it and go on
        logger.exception("unexpected error on %s", item.path)
        return item.video_id, None, f"unexpected {type(exc).__name__}: {exc}"


def landmark_columns(landmarks) -> dict[str, float]:
    """Manifest columns ``left_eye_x`` ... ``mouth_right_y`` (frame pixels; NaN when there are none)."""
    values = landmarks if landmarks is not None else (float("nan"),) * len(LANDMARK_COLUMNS)
    return dict(zip(LANDMARK_COLUMNS, (float(v) for v in values)))


def _write_crops(item: VideoItem, crops, out_dir: Path, config: PrepareConfig) -> tuple[list[dict], list[int]]:
    """Write the crops into a scratch folder, make them durable, then move the folder into place.

    Returns:
        The manifest rows of the crops and each crop file's size in bytes.
    """
    crops_root = (out_dir / "crops").resolve()
    folder = crop_folder(item.video_id)
    final = (out_dir / folder).resolve()
    if crops_root not in final.parents:  # adapters give relative ids; never write or delete outside
        raise UnmaskError(f"Video id {item.video_id!r} would place crops outside {crops_root}")
    if final.is_dir() and any(p.is_dir() for p in final.iterdir()):  # never delete what is not ours
        raise UnmaskError(f"{final} holds folders, not only this video's crops; move them away and run again")
    partial = out_dir / STATE_DIR / "partial" / video_key(item.video_id)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if config.image_format == "jpg" else []
    rows, sizes = [], []
    for crop in crops:
        name = f"{crop.frame_index:06d}_{crop.track_id:02d}.{config.image_format}"
        if not cv2.imwrite(str(partial / name), cv2.cvtColor(crop.image, cv2.COLOR_RGB2BGR), params):
            raise OSError(f"could not write {partial / name}")
        fsync_path(partial / name)
        sizes.append((partial / name).stat().st_size)
        x1, y1, x2, y2 = crop.box
        rows.append(
            {
                "crop_path": f"{folder}/{name}",
                "frame_index": crop.frame_index,
                "time_s": crop.time_s,
                "track_id": crop.track_id,
                "det_score": crop.score,
                "x1": x1,
                "y1": y1,
                "x2": x2,
                "y2": y2,
                "det_pass": crop.det_pass,
                **landmark_columns(crop.landmarks),
                **dict(zip(CROP_BOX_COLUMNS, crop.crop_box or (float("nan"),) * 4)),
            }
        )
    fsync_path(partial)
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, final)
    fsync_path(final.parent)
    return rows, sizes


def crops_intact(out_dir: Path, record: dict) -> bool:
    """Whether the crops a done record lists are all on disk with the sizes written (a cheap
    check, one ``stat`` per crop, before a resumed run skips the video)."""
    sizes = record.get("crop_bytes")
    for i, row in enumerate(record["crops"]):
        try:
            size = (out_dir / row["crop_path"]).stat().st_size
        except OSError:
            return False
        if sizes is not None and (len(sizes) != len(record["crops"]) or size != sizes[i]):
            return False
    return True

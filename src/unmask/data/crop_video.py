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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2

from unmask.data.sources import VideoItem
from unmask.data.splits import DEFAULT_FRACTIONS, SEED, check_fractions
from unmask.errors import SettingError, UnmaskError, unknown_name
from unmask.faces.crop import CROP_BOX_COLUMNS, DEFAULT_MARGIN
from unmask.faces.detectors import DEFAULT_DETECTOR, DETECTORS, LANDMARK_COLUMNS, create_detector
from unmask.faces.extract import FaceExtractor, check_crop_settings
from unmask.settings import named_settings, upgrade_recorded
from unmask.utils.atomic import fsync_path, write_atomic
from unmask.video.sampling import FrameSampler, sample_frames

logger = logging.getLogger(__name__)

STATE_DIR = ".unmask"
IMAGE_FORMATS = ("png", "jpg")
CROPS_SUFFIX = ".crops"


# What recorded configs from before the face step's later passes meant: one pass, gaps left open.
BEFORE_LATER_PASSES = {"second_pass": False, "bridge_max_gap": 0, "near_pass": False}


# Settings renamed to the command line's names, and what they were called when recorded before.
RENAMED = {"size_px": "size", "max_side_px": "max_side", "second_pass_side_px": "second_pass_side",
           "seed": "split_seed"}
# Settings that decide the splits, not the crops: recorded in the manifest, free to change on resume.
SPLIT_SETTINGS = ("split_seed", "split_fractions")


@named_settings("prepare setting", RENAMED)
@dataclass(frozen=True)
class PrepareConfig:
    """How to turn videos into face crops, named as ``unmask prepare``'s flags. Every field but
    ``workers``, ``shard`` and ``device`` is recorded with the output; a resumed run must use the
    same values, except for the split settings (the crops are kept, the splits made anew).

    Attributes:
        dataset: adapter name (see :data:`unmask.data.sources.DATASETS`).
        sampler: which frames to take: a :class:`FrameSampler`, or a strategy name with its defaults.
        detector: face detector name; ``device`` for the torch backend.
        margin: crop side over the face box's longer side.
        size: saved crop side in pixels.
        keep: ``largest`` face per frame or ``all`` faces in tracks.
        image_format: ``png`` (lossless, default) or ``jpg`` (quality 95; smaller, but adds its
            own compression traces to what a detector sees).
        dataset_options: adapter options, e.g. ``{"compression": "c23"}`` for ``ffpp``,
            ``{"people": "people.csv"}`` for ``folder``.
        min_score, max_side: the first pass's score floor and frame size (longer side, px).
        second_pass: look again at the sampled frames where the first pass found no face, with
            the frames brought to ``second_pass_side`` px (shrunk or enlarged), the luma
            contrast-equalised (CLAHE) and the score floor ``second_pass_min_score``. When more
            than ``second_pass_probe`` frames were missed, it looks at that many, evenly spread,
            first, and at the rest only if it found a face (bounds the cost of faceless videos).
        near_pass: search the frames still without a face near the face of the frames around
            them (a window a few face widths across, enlarged, contrast-equalised), with the
            score floor ``near_pass_min_score``; only in videos where the passes before found a
            face in at least two frames (:class:`~unmask.faces.extract.FaceExtractor`).
        bridge_max_gap: bridge gaps of up to this many sampled frames in a face track (box
            interpolated, crop cut, ``det_pass="bridged"``); 0: never.
        workers: worker processes (1: in this process).
        shard: ``(k, n)``: process only the k-th of n deterministic parts (1-based).
        split_seed: seed of the split protocols.
        split_fractions: ``(train, val, test)`` shares of the ``paper`` and ``video`` splits (of
            crops and of videos); the default is the paper's: 10% test, then 10% of the rest
            for validation. Official lists keep their own test set; a validation set carved from
            their training videos takes ``val / (train + val)`` of them.
    """

    dataset: str
    sampler: FrameSampler = field(default_factory=FrameSampler)
    detector: str = DEFAULT_DETECTOR
    margin: float = DEFAULT_MARGIN
    size: int = 224
    keep: str = "largest"
    image_format: str = "png"
    dataset_options: dict = field(default_factory=dict)
    min_score: float = 0.9
    max_side: int = 640
    second_pass: bool = True
    second_pass_side: int = 1280
    second_pass_min_score: float = 0.9
    second_pass_probe: int = 8
    near_pass: bool = True
    near_pass_min_score: float = 0.7
    bridge_max_gap: int = 2
    device: str | None = None
    workers: int = 1
    shard: tuple[int, int] | None = None
    split_seed: int = SEED
    split_fractions: tuple[float, float, float] = DEFAULT_FRACTIONS

    def __post_init__(self):
        if isinstance(self.sampler, str):
            object.__setattr__(self, "sampler", FrameSampler(self.sampler))
        object.__setattr__(self, "split_fractions", check_fractions(self.split_fractions))
        if self.detector not in DETECTORS:
            raise unknown_name("face detector", self.detector, DETECTORS)
        check_crop_settings(margin=self.margin, size=self.size, keep=self.keep)
        if self.image_format not in IMAGE_FORMATS:
            raise unknown_name("image format", self.image_format, IMAGE_FORMATS)
        if not 0.0 <= self.min_score <= 1.0:
            raise SettingError(f"min_score must lie in [0, 1], not {self.min_score}", "min_score")
        if self.max_side < 0:
            raise SettingError(f"max_side must be 0 (full size) or a positive number of pixels, not {self.max_side}",
                               "max_side")
        if not 0.0 <= self.second_pass_min_score <= 1.0:
            raise SettingError(f"second_pass_min_score must lie in [0, 1], not {self.second_pass_min_score}",
                               "second_pass_min_score")
        if not 0.0 <= self.near_pass_min_score <= 1.0:
            raise SettingError(f"near_pass_min_score must lie in [0, 1], not {self.near_pass_min_score}",
                               "near_pass_min_score")
        if self.second_pass_side < 64:
            raise SettingError(f"second_pass_side must be at least 64 pixels, not {self.second_pass_side}",
                               "second_pass_side")
        if self.second_pass_probe < 0:
            raise SettingError(f"second_pass_probe must be 0 (all frames) or a number of frames, "
                               f"not {self.second_pass_probe}", "second_pass_probe")
        if self.bridge_max_gap < 0:
            raise SettingError(f"bridge_max_gap must be 0 (never) or a number of frames, not {self.bridge_max_gap}",
                               "bridge_max_gap")
        if self.workers < 1:
            raise SettingError(f"workers must be at least 1, not {self.workers}", "workers")
        if self.shard is not None:
            k, n = self.shard
            if not 1 <= k <= n:
                raise SettingError(f"shard must be K/N with 1 <= K <= N, not {k}/{n}", "shard")

    @classmethod
    def from_recorded(cls, recorded: dict) -> "PrepareConfig":
        """Rebuild the settings :meth:`recorded` wrote (into a manifest or a checkpoint): so that
        explaining and predicting cut faces exactly as the training data was cut.

        Settings recorded before a field existed take the value that reproduces what was done
        then (:data:`BEFORE_LATER_PASSES`: one pass, no bridging), not today's default."""
        known = {f.name for f in fields(cls)} - {"workers", "shard", "device"}
        recorded = upgrade_recorded(recorded, RENAMED)
        values = {**BEFORE_LATER_PASSES, **{k: v for k, v in recorded.items() if k in known and v is not None}}
        if isinstance(values.get("sampler"), dict):
            values["sampler"] = FrameSampler(**values["sampler"])
        if "split_fractions" in values:
            values["split_fractions"] = tuple(values["split_fractions"])
        return cls(**{"dataset": "unknown", **values})

    def recorded(self) -> dict:
        """The settings recorded with the output: those that decide what the crops look like
        (compared when a run is resumed) and the split settings (:data:`SPLIT_SETTINGS`)."""
        d = asdict(self)
        for volatile in ("workers", "shard", "device"):
            d.pop(volatile)
        d["split_fractions"] = list(d["split_fractions"])
        return d

    @classmethod
    def comparable(cls, recorded: dict) -> dict:
        """Recorded settings as today's fields with the meaning they had then (:meth:`from_recorded`),
        as JSON gives them back: so that settings recorded before a field existed compare equal to
        today's settings that mean the same (``near_pass=False`` for a two-pass folder)."""
        return json.loads(json.dumps(cls.from_recorded(recorded).recorded()))


# How crops are cut, as a model sees them: crops cut otherwise than a run's training crops look
# unlike what it learnt (another scale, more or less context, JPEG traces it never saw).
CROP_LOOK = {"size": "size {} px", "margin": "margin {}", "image_format": "format {}"}


def crop_differences(trained: dict, data: dict) -> list[str]:
    """How the crops recorded in ``data`` were cut unlike those recorded in ``trained``.

    Args:
        trained, data: prepare settings as recorded (:meth:`PrepareConfig.recorded`; a manifest's
            metadata, a checkpoint's ``data.prepare``), old names included. A setting either
            lacks is not compared.

    Returns:
        One phrase per difference, e.g. ``"size 128 px, not 224 px as in training"``.
    """
    trained, data = upgrade_recorded(trained or {}, RENAMED), upgrade_recorded(data or {}, RENAMED)
    return [f"{CROP_LOOK[k].format(data[k])}, not {CROP_LOOK[k].format(trained[k]).split(' ', 1)[1]} as in training"
            for k in CROP_LOOK if trained.get(k) is not None and data.get(k) is not None and trained[k] != data[k]]


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
    return create_detector(config.detector, min_score=config.min_score, max_side_px=config.max_side,
                           device=config.device)


def make_second_pass(config: PrepareConfig, detector):
    """The second pass ``config`` asks for, sharing ``detector``'s weights; None when it is off."""
    if not config.second_pass:
        return None
    side = config.second_pass_side
    return detector.with_settings(max_side_px=side, min_side_px=side, enhance=True,
                                  min_score=config.second_pass_min_score)


def make_near_pass(config: PrepareConfig, detector):
    """The third pass ``config`` asks for, sharing ``detector``'s weights; None when it is off.

    CLAHE on a 4x4 grid: its windows are a few face widths across, so each tile holds about a face
    (the 8x8 grid meant for whole frames found fewer faces and one false box on the hard set).
    """
    if not config.near_pass:
        return None
    return detector.with_settings(enhance=True, clahe_tiles=4, min_score=config.near_pass_min_score)


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
    return FaceExtractor(detector, margin=config.margin, size_px=config.size, keep=config.keep,
                         second_pass=make_second_pass(config, detector), bridge_max_gap=config.bridge_max_gap,
                         second_pass_probe=config.second_pass_probe, near_pass=make_near_pass(config, detector))


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
        record = {"video_id": item.video_id, "frames": len(frames), "stream": frames[0].stream_index,
                  "reason": reason, "crops": rows, "crop_bytes": sizes}
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
        rows.append({"crop_path": f"{folder}/{name}", "frame_index": crop.frame_index,
                     "time_s": crop.time_s, "track_id": crop.track_id, "det_score": crop.score,
                     "x1": x1, "y1": y1, "x2": x2, "y2": y2, "det_pass": crop.det_pass,
                     **landmark_columns(crop.landmarks),
                     **dict(zip(CROP_BOX_COLUMNS, crop.crop_box or (float("nan"),) * 4))})
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

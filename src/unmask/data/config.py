"""How videos become face crops: :class:`PrepareConfig`, named as ``unmask prepare``'s flags.

Every stage that cuts faces (prepare, explain, predict, serve) rebuilds the face step from the
settings recorded with the data (:meth:`PrepareConfig.from_recorded`), so crops are cut alike.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from unmask.data.splits import DEFAULT_FRACTIONS, SEED, check_fractions
from unmask.errors import SettingError, unknown_name
from unmask.faces.crop import DEFAULT_MARGIN
from unmask.faces.detectors import DEFAULT_DETECTOR, DETECTORS
from unmask.faces.extract import check_crop_settings
from unmask.settings import PREPARE_RENAMED, named_settings, setting, upgrade_recorded
from unmask.video.sampling import FrameSampler

IMAGE_FORMATS = ("png", "jpg")

# What recorded configs from before the face step's later passes meant: one pass, gaps left open.
BEFORE_LATER_PASSES = {"second_pass": False, "bridge_max_gap": 0, "near_pass": False, "small_face_pass": False}


RENAMED = PREPARE_RENAMED  # names recorded by older manifests and resume records
# Settings that decide the splits, not the crops: recorded in the manifest, free to change on resume.
SPLIT_SETTINGS = ("split_seed", "split_fractions")


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)`` (``--shard``'s text)."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise SettingError(f"shard must look like K/N (e.g. 2/8), not {text!r}", "shard") from None
    return k, n


def parse_fractions(text: str) -> tuple[float, ...]:
    """``"0.8,0.1,0.1"`` -> ``(0.8, 0.1, 0.1)`` (``--split-fractions``'s text; checked by :class:`PrepareConfig`)."""
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise SettingError(
            f"split_fractions must look like 0.8,0.1,0.1 (train,val,test), not {text!r}", "split_fractions"
        ) from None


@named_settings("prepare setting")
@dataclass(frozen=True)
class PrepareConfig:
    """How to turn videos into face crops, named as ``unmask prepare``'s flags. Every field but
    ``workers``, ``shard`` and ``device`` is recorded with the output; a resumed run must use the
    same values, except for the split settings (the crops are kept, the splits made anew). Each
    field's help, choices and flag are defined with it: ``unmask prepare`` builds its options from
    them."""

    dataset: str = setting(
        help="Layout of ROOT.",
        flag=("--dataset", "-d"),
        choices="unmask.data.sources:DATASETS",
        more="The adapter's name (see :data:`unmask.data.sources.DATASETS`).",
    )
    sampler: FrameSampler = setting(
        default_factory=FrameSampler,
        help="Which frames of each video (the frame sampler).",
        flag=False,
        more="A :class:`FrameSampler`, or a strategy name with its defaults (--sampler, --num-frames, --every-n).",
    )
    detector: str = setting(
        DEFAULT_DETECTOR,
        help="Face detector.",
        choices="unmask.faces.detectors:DETECTORS",
        more="device picks the torch backend's device.",
    )
    margin: float = setting(DEFAULT_MARGIN, help="Crop side over the face box's longer side.")
    size: int = setting(224, help="Crop side in pixels.", more="The saved crop's side.")
    keep: str = setting(
        "largest",
        help="The largest face per frame, or all faces linked into tracks.",
        choices="unmask.faces.extract:KEEP_MODES",
    )
    max_side: int = setting(
        640, help="The first pass detects on frames shrunk to this many px on their longer side (0: full size)."
    )
    second_pass: bool = setting(
        True,
        help="Look again ({second_pass_side} px, contrast-equalised luma) at frames where the {max_side} px "
        "pass found no face.",
        more="The frames are brought to second_pass_side px (shrunk or enlarged), the luma contrast-equalised "
        "(CLAHE), the score floor second_pass_min_score. When more than second_pass_probe frames were "
        "missed, it looks at that many, evenly spread, first, and at the rest only if it found a face "
        "(bounds the cost of faceless videos).",
    )
    near_pass: bool = setting(
        True,
        help="Search frames still without a face near where the face was in the frames around them.",
        more="A window a few face widths across, enlarged, contrast-equalised, with the score floor "
        "near_pass_min_score; only in videos where the passes before found a face in at least two frames "
        "(:class:`~unmask.faces.extract.FaceExtractor`).",
    )
    small_face_pass: bool = setting(
        True,
        help="Look at large frames in full ({small_face_side} px) where the passes before saw no face nearby.",
        more="Frames more than two sampled frames from any face passes 1 and 2 found (all frames, when they found "
        "none), if larger than second_pass_side, are looked at up to small_face_side px, contrast-equalised, "
        "faces from small_face_min_px px, score floor small_face_min_score; small_face_probe frames first, the "
        "rest only if one showed a face. Clips whose faces passes 1 and 2 see never reach it.",
    )
    bridge_max_gap: int = setting(
        2,
        help="Bridge gaps of up to this many sampled frames in a face track (0: never).",
        more='The box is interpolated, the crop cut, det_pass "bridged".',
    )
    image_format: str = setting(
        "png",
        help="png (lossless) or jpg.",
        choices=IMAGE_FORMATS,
        more="jpg (quality 95) is smaller, but adds its own compression traces to what a detector sees.",
    )
    dataset_options: dict = setting(
        default_factory=dict,
        help="Adapter options.",
        flag=False,
        more='E.g. {"compression": "c23"} for ffpp (--compression, --methods), {"people": "people.csv"} for '
        "folder (--people).",
    )
    min_score: float = setting(0.9, help="The first pass's score floor.", flag=False)
    second_pass_side: int = setting(1280, help="The second pass's frame size (longer side, px).", flag=False)
    second_pass_min_score: float = setting(0.9, help="The second pass's score floor.", flag=False)
    second_pass_probe: int = setting(8, help="Frames the second pass probes first (0: all).", flag=False)
    near_pass_min_score: float = setting(0.7, help="The near pass's score floor.", flag=False)
    small_face_side: int = setting(1920, help="The small-face pass's largest frame size (longer side, px).", flag=False)
    small_face_min_px: int = setting(12, help="The small-face pass's smallest face (px).", flag=False)
    small_face_min_score: float = setting(0.95, help="The small-face pass's score floor.", flag=False)
    small_face_probe: int = setting(4, help="Frames the small-face pass probes first (0: all).", flag=False)
    workers: int = setting(1, help="Worker processes (one per core is a good start).", more="1: in this process.")
    shard: tuple[int, int] | None = setting(
        None,
        help="K/N: do only the K-th of N parts; combine with `unmask merge`.",
        parse=parse_shard,
        more="(k, n) in Python: the k-th of n deterministic parts (1-based).",
    )
    device: str | None = setting(None, help="Torch device for --detector facenet (default: cuda if there is one).")
    split_seed: int = setting(SEED, help="Seed of the paper and video splits.")
    split_fractions: tuple[float, float, float] = setting(
        DEFAULT_FRACTIONS,
        help="train,val,test shares of the paper and video splits (the paper's: 10% test, then 10% of the rest).",
        parse=parse_fractions,
        more="Shares of crops and of videos. Official lists keep their own test set; a validation set carved from "
        "their training videos takes val / (train + val) of them.",
    )

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
            raise SettingError(
                f"max_side must be 0 (full size) or a positive number of pixels, not {self.max_side}", "max_side"
            )
        if not 0.0 <= self.second_pass_min_score <= 1.0:
            raise SettingError(
                f"second_pass_min_score must lie in [0, 1], not {self.second_pass_min_score}", "second_pass_min_score"
            )
        if not 0.0 <= self.near_pass_min_score <= 1.0:
            raise SettingError(
                f"near_pass_min_score must lie in [0, 1], not {self.near_pass_min_score}", "near_pass_min_score"
            )
        if not 0.0 <= self.small_face_min_score <= 1.0:
            raise SettingError(
                f"small_face_min_score must lie in [0, 1], not {self.small_face_min_score}", "small_face_min_score"
            )
        if self.small_face_side < 64 or self.small_face_min_px < 1 or self.small_face_probe < 0:
            raise SettingError(
                "small_face_side must be at least 64 px, small_face_min_px at least 1 and small_face_probe at least 0",
                "small_face_side",
            )
        if self.second_pass_side < 64:
            raise SettingError(
                f"second_pass_side must be at least 64 pixels, not {self.second_pass_side}", "second_pass_side"
            )
        if self.second_pass_probe < 0:
            raise SettingError(
                f"second_pass_probe must be 0 (all frames) or a number of frames, not {self.second_pass_probe}",
                "second_pass_probe",
            )
        if self.bridge_max_gap < 0:
            raise SettingError(
                f"bridge_max_gap must be 0 (never) or a number of frames, not {self.bridge_max_gap}", "bridge_max_gap"
            )
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
    return [
        f"{CROP_LOOK[k].format(data[k])}, not {CROP_LOOK[k].format(trained[k]).split(' ', 1)[1]} as in training"
        for k in CROP_LOOK
        if trained.get(k) is not None and data.get(k) is not None and trained[k] != data[k]
    ]

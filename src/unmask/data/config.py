"""How videos become face crops: :class:`PrepareConfig`, named as ``unmask prepare``'s flags.

Every stage that cuts faces (prepare, explain, predict, serve) rebuilds the face step from the
settings recorded with the data (:meth:`PrepareConfig.from_recorded`), so crops are cut alike.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from unmask.data.splits import DEFAULT_FRACTIONS, SEED, check_fractions
from unmask.errors import SettingError, unknown_name
from unmask.faces.crop import DEFAULT_MARGIN
from unmask.faces.detectors import DEFAULT_DETECTOR, DETECTORS
from unmask.faces.extract import check_crop_settings
from unmask.settings import PREPARE_RENAMED, named_settings, upgrade_recorded
from unmask.video.sampling import FrameSampler

IMAGE_FORMATS = ("png", "jpg")

# What recorded configs from before the face step's later passes meant: one pass, gaps left open.
BEFORE_LATER_PASSES = {"second_pass": False, "bridge_max_gap": 0, "near_pass": False}


RENAMED = PREPARE_RENAMED
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

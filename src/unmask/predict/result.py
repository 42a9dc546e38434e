"""What a prediction says: frozen dataclasses that turn into plain JSON (no arrays).

The fields are documented for users in ``docs/predict.md`` ("The result"); :meth:`Prediction.to_dict`
gives exactly those fields, :meth:`Prediction.from_dict` reads them back.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

VERDICTS = ("fake", "real", "inconclusive")
REASON_CODES = ("unreadable", "no_face", "too_few_faces", "too_close")


@dataclass(frozen=True)
class FrameScore:
    """One face in one sampled frame: where and when it was, and how fake it looks.

    Attributes:
        frame_index: position of the frame in the video (0 for an image).
        time_s: its presentation time in seconds.
        track_id: the face track (person) it belongs to.
        p_fake: calibrated probability that this face is fake.
        box: ``[x1, y1, x2, y2]`` face box in frame pixels.
    """

    frame_index: int
    time_s: float
    track_id: int
    p_fake: float
    box: list[float]


@dataclass(frozen=True)
class TrackVerdict:
    """The verdict on one person (face track) of a clip.

    Attributes:
        verdict: ``fake``, ``real`` or ``inconclusive``; a track seen in too few frames is
            ``inconclusive`` and does not decide the clip.
        p_fake: the track's aggregated score.
        n_faces: faces of this track that were scored.
        first_s, last_s: when the track is first and last seen.
    """

    track_id: int
    verdict: str
    p_fake: float
    n_faces: int
    first_s: float
    last_s: float


@dataclass(frozen=True)
class Prediction:
    """The verdict on one input (a video or an image), with the evidence behind it.

    Attributes:
        input: the path that was judged.
        kind: ``video`` or ``image``.
        verdict: ``fake``, ``real`` or ``inconclusive``.
        p_fake: the clip's score (the most suspicious person's), ``None`` when no face was scored.
        threshold: the decision threshold on ``p_fake`` (from the costs, see ``costs``).
        costs: ``{"missed_fake": .., "false_alarm": ..}`` the threshold was derived from.
        reason: a sentence saying why the verdict is inconclusive (else ``None``).
        reason_code: ``None`` or one of :data:`REASON_CODES`.
        tracks: one :class:`TrackVerdict` per person.
        timeline: one :class:`FrameScore` per scored face, in time order.
        frames_sampled, frames_with_face: frames looked at, and those with a face.
        duration_s: a video's length by its headers (``None`` for an image or an unreadable file).
        decoded_s: how much of it decoded, up to the last frame looked at (a lower bound with a
            sampler that does not look at the last frame); less than ``duration_s`` when the file
            is cut short or damaged, and then ``note`` says so.
        note: a sentence to read beside any verdict (a clip that decoded only in part), else ``None``.
        timings: seconds per stage: ``decode``, ``detect``, ``crop``, ``model``, ``aggregate``, ``total``.
        model: ``{"name", "run", "input_size_px", "aggregation"}``: which model judged.
        regions: where the explained faces' evidence lies (:mod:`unmask.explain.regions`), once
            :meth:`with_regions` has added it: ``{"regions": [names], "faces": [{"frame_index",
            "time_s", "track_id", "method", "shares": {region: share}}], "persons": [{"track_id",
            "n_faces", "shares"}]}``; ``None`` when no face was explained.
        faces: ``(S, S, 3) uint8`` RGB face crops, parallel to ``timeline``; only with
            ``keep_faces=True`` (for :meth:`unmask.Detector.explain`); never serialised.
        landmarks: each face's five landmarks in its crop's pixels (``(5, 2)``, or None where the
            detector gave none), parallel to ``faces``; never serialised.
    """

    input: str
    kind: str
    verdict: str
    p_fake: float | None
    threshold: float
    costs: dict
    reason: str | None = None
    reason_code: str | None = None
    tracks: list[TrackVerdict] = field(default_factory=list)
    timeline: list[FrameScore] = field(default_factory=list)
    frames_sampled: int = 0
    frames_with_face: int = 0
    duration_s: float | None = None
    decoded_s: float | None = None
    note: str | None = None
    timings: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    regions: dict | None = None
    faces: list[np.ndarray] | None = field(default=None, repr=False, compare=False)
    landmarks: list[np.ndarray | None] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The result as plain JSON types (``faces`` and ``landmarks`` left out)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _ARRAYS}
        d["tracks"] = [asdict(t) for t in self.tracks]
        d["timeline"] = [asdict(s) for s in self.timeline]
        return _plain(d)

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict) -> "Prediction":
        """Read back what :meth:`to_dict` wrote."""
        known = {f.name for f in fields(cls)} - _ARRAYS
        values = {k: v for k, v in d.items() if k in known}
        values["tracks"] = [TrackVerdict(**t) for t in d.get("tracks", [])]
        values["timeline"] = [FrameScore(**s) for s in d.get("timeline", [])]
        return cls(**values)

    def with_regions(self, heatmaps: list["Heatmap"]) -> "Prediction":
        """A copy with :attr:`regions` from ``heatmaps`` (those of :meth:`unmask.Detector.explain`):
        each explained face's shares, and per person their mean over the person's faces."""
        from dataclasses import replace

        from unmask.explain.regions import ALL_REGIONS, mean_shares

        faces = [
            {
                "frame_index": h.frame_index,
                "time_s": h.time_s,
                "track_id": h.track_id,
                "method": h.method,
                "shares": h.regions,
            }
            for h in heatmaps
            if h.regions
        ]
        if not faces:
            return replace(self, regions=None)
        persons = []
        for track_id in sorted({f["track_id"] for f in faces}):
            mine = [f for f in faces if f["track_id"] == track_id]
            persons.append(
                {
                    "track_id": track_id,
                    "n_faces": len({f["frame_index"] for f in mine}),
                    "shares": mean_shares(f["shares"] for f in mine),
                }
            )
        return replace(self, regions={"regions": list(ALL_REGIONS), "faces": faces, "persons": persons})

    def most_suspicious(self, n: int = 3) -> list[FrameScore]:
        """The ``n`` faces of the timeline with the highest ``p_fake`` (earliest first on ties)."""
        order = sorted(range(len(self.timeline)), key=lambda i: (-self.timeline[i].p_fake, i))
        return [self.timeline[i] for i in order[:n]]


@dataclass(frozen=True)
class Heatmap:
    """One explanation of one face: what in it made the model say "fake".

    Attributes:
        frame_index, time_s, track_id, p_fake: which face (as in the timeline).
        method: the explanation method (``gradcam`` ...).
        faithfulness: the deletion test's score (above 0: the map shows what the model uses).
        face: ``(S, S, 3) uint8`` RGB face crop as the model saw it, at least 224 px by default.
        overlay: ``(S, S, 3) uint8`` RGB heatmap (jet) blended over ``face``.
        heatmap: ``(h, w) float32`` in [0, 1], the raw map at the model's input size.
        regions: the share of the map's mass in each face region (:mod:`unmask.explain.regions`),
            ``None`` without landmarks or for a flat map.
    """

    frame_index: int
    time_s: float
    track_id: int
    p_fake: float
    method: str
    faithfulness: float
    face: np.ndarray = field(repr=False, compare=False)
    overlay: np.ndarray = field(repr=False, compare=False)
    heatmap: np.ndarray = field(repr=False, compare=False)
    regions: dict | None = None

    def to_dict(self) -> dict:
        """The heatmap's description as plain JSON types (the arrays left out)."""
        return _plain(
            {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("face", "overlay", "heatmap")}
        )


_ARRAYS = {"faces", "landmarks"}


def _plain(obj):
    """Numpy scalars to Python ones and NaN to ``None``, recursively: strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

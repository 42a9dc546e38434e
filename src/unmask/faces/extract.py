"""Frames in, face crops out: the face step that prepare, predict and explain all call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from unmask.errors import UnmaskError
from unmask.faces.crop import crop_face
from unmask.faces.detectors import DEFAULT_DETECTOR, FaceDetector, create_detector
from unmask.faces.track import assign_tracks
from unmask.video.reader import Frame

KEEP_MODES = ("largest", "all")


@dataclass(frozen=True)
class FaceCrop:
    """One face crop.

    Attributes:
        frame_index, time_s: where in the video it was found.
        track_id: the face track (person) it belongs to; always 0 with ``keep="largest"``.
        score: the detector's confidence.
        box: ``(x1, y1, x2, y2)`` detection box in frame pixels.
        image: ``(size_px, size_px, 3) uint8`` RGB crop.
    """

    frame_index: int
    time_s: float
    track_id: int
    score: float
    box: tuple[float, float, float, float]
    image: np.ndarray


def check_crop_settings(*, margin: float, size_px: int, keep: str) -> None:
    """Raise :class:`UnmaskError` for crop settings that cannot work."""
    if keep not in KEEP_MODES:
        raise UnmaskError(f"--keep must be one of {', '.join(KEEP_MODES)}, not {keep!r}")
    if margin < 1.0:
        raise UnmaskError(f"--margin must be at least 1.0 (the face box itself), not {margin}")
    if size_px < 8:
        raise UnmaskError(f"--size must be at least 8 pixels, not {size_px}")


def detect_frames(detector: FaceDetector, frames: Sequence[Frame], batch_size: int = 16) -> list[list]:
    """Run ``detector`` over ``frames`` in batches; one list of detections per frame."""
    detections = []
    for start in range(0, len(frames), batch_size):
        detections.extend(detector.detect([f.image for f in frames[start:start + batch_size]]))
    return detections


class FaceExtractor:
    """Detect, track and crop faces in sampled frames.

    Args:
        detector: a :class:`FaceDetector`, or the name of one (built with default settings).
        margin: crop side over the longer box side.
        size_px: side of the saved crops.
        keep: ``"largest"`` face per frame, or ``"all"`` faces linked into tracks.
        batch_size: frames per detector call.
    """

    def __init__(self, detector: FaceDetector | str = DEFAULT_DETECTOR, *, margin: float = 1.3,
                 size_px: int = 224, keep: str = "largest", batch_size: int = 16):
        check_crop_settings(margin=margin, size_px=size_px, keep=keep)
        self.detector = create_detector(detector) if isinstance(detector, str) else detector
        self.margin, self.size_px, self.keep, self.batch_size = margin, size_px, keep, batch_size

    def __call__(self, frames: Sequence[Frame]) -> list[FaceCrop]:
        """Return the face crops found in ``frames``, in frame order."""
        return self.crop(frames, self.detect(frames))

    def detect(self, frames: Sequence[Frame]) -> list[list]:
        """The detector's faces in each frame (the slow half, apart so that callers can time it)."""
        return detect_frames(self.detector, frames, self.batch_size)

    def crop(self, frames: Sequence[Frame], detections: Sequence[Sequence]) -> list[FaceCrop]:
        """Keep the faces ``keep`` asks for, link them into tracks and cut the crops, in frame order."""
        if self.keep == "largest":
            detections = [sorted(d, key=lambda x: -x.area)[:1] for d in detections]
            track_ids = [[0] * len(d) for d in detections]
        else:
            track_ids = assign_tracks(detections)
        crops = []
        for frame, dets, ids in zip(frames, detections, track_ids):
            for det, track_id in zip(dets, ids):
                image = crop_face(frame.image, det.box, margin=self.margin, size_px=self.size_px)
                crops.append(FaceCrop(frame.index, frame.time_s, track_id, det.score, det.box, image))
        return crops

"""Frames in, face crops out: the face step that prepare, predict and explain all call.

Three passes and bridged gaps:

1. The first pass runs the detector on every sampled frame at reduced size (640 px): fast, and it
   finds the faces of ordinary footage.
2. Only the frames where it found nothing go to the second pass: the same detector's weights with
   other settings (larger frames, contrast-equalised luma), which finds small, dark and turned
   faces at a few times the cost. Ordinary clips never reach it, so they keep the first pass's speed.
3. The frames still without a face, in a video where the passes before found one in at least two
   frames, are searched near where the face was seen in the neighbouring frames: a window a few
   face widths across, enlarged so the face is 80, 120, then 160 px wide, its luma
   contrast-equalised on a grid of face-sized tiles, with a lower score floor (where to look is
   known, so a weaker response is trusted there). Faces found in the frame before serve the next.
4. A face track with a short gap (sampled frames where neither pass found its face, between two
   frames where it was found at nearby places) is bridged: the box is interpolated and the crop
   cut, marked ``det_pass="bridged"``, so the gap is reported in the manifest, not dropped.

Each crop records how it was found in ``FaceCrop.det_pass``: ``"1"``, ``"2"``, ``"3"`` or ``"bridged"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from unmask.errors import SettingError
from unmask.faces.crop import crop_face, square_box
from unmask.faces.detectors import DEFAULT_DETECTOR, Detection, FaceDetector, create_detector
from unmask.faces.track import assign_tracks, distance, iou, same_place
from unmask.video.reader import Frame
from unmask.video.sampling import evenly_spaced

KEEP_MODES = ("largest", "all")
DET_PASSES = ("1", "2", "3", "bridged")
# Face widths (window pixels) the third pass enlarges its window to, in turn until one finds the
# face: a dim, noisy face that MTCNN misses at one scale it often finds at another (hard set).
NEAR_FACE_PX = (80, 120, 160)
# The largest side a third-pass window is enlarged to: a window spanning most of a 1080p frame (two
# sightings far apart) at 160 px per 40 px face would be 6000 px wide, seconds per try.
NEAR_MAX_SIDE_PX = 1280
# Twice the largest input of any backbone (EfficientNetV2-M, 480 px): larger crops only cost disk
# and memory (32 frames of 100000 px crops would take 30 GB).
MAX_SIZE_PX = 1024
# A crop four times the face's side is mostly background already; more is a typo.
MAX_MARGIN = 4.0


@dataclass(frozen=True)
class FaceCrop:
    """One face crop.

    Attributes:
        frame_index, time_s: where in the video it was found.
        track_id: the face track (person) it belongs to; always 0 with ``keep="largest"``.
        score: the detector's confidence.
        box: ``(x1, y1, x2, y2)`` detection box in frame pixels.
        image: ``(size_px, size_px, 3) uint8`` RGB crop.
        det_pass: ``"1"`` (first pass), ``"2"`` (second pass), ``"3"`` (searched near the face of
            the neighbouring frames) or ``"bridged"`` (box interpolated
            across a gap in its track; ``score`` is then 0.0).
        landmarks: five ``(x, y)`` points in frame pixels, flattened (see
            :data:`unmask.faces.detectors.LANDMARK_NAMES`); None when the detector gives none.
        crop_box: ``(x1, y1, x2, y2)`` of the square the crop was cut from, in frame pixels
            (:func:`unmask.faces.crop.square_box`): maps frame points (landmarks) into the crop.
    """

    frame_index: int
    time_s: float
    track_id: int
    score: float
    box: tuple[float, float, float, float]
    image: np.ndarray
    det_pass: str = "1"
    landmarks: tuple[float, ...] | None = None
    crop_box: tuple[int, int, int, int] | None = None


def check_crop_settings(*, margin: float, size: int, keep: str) -> None:
    """Raise :class:`SettingError` for crop settings (``prepare``'s names) that cannot work."""
    if keep not in KEEP_MODES:
        raise SettingError(f"keep must be one of {', '.join(KEEP_MODES)}, not {keep!r}", "keep")
    if not 1.0 <= margin <= MAX_MARGIN:  # also refuses nan (every comparison with it is false) and inf
        raise SettingError(f"margin must be at least 1.0 (the face box itself) and at most {MAX_MARGIN}, not {margin}",
                           "margin")
    if not 8 <= size <= MAX_SIZE_PX:
        raise SettingError(f"size must lie between 8 and {MAX_SIZE_PX} pixels, not {size}", "size")


def detect_frames(detector: FaceDetector, frames: Sequence[Frame], batch_size: int = 16) -> list[list]:
    """Run ``detector`` over ``frames`` in batches; one list of detections per frame."""
    detections = []
    for start in range(0, len(frames), batch_size):
        detections.extend(detector.detect([f.image for f in frames[start:start + batch_size]]))
    return detections


def bridge_gaps(detections: list[list[Detection]], track_ids: list[list[int]], max_gap: int
                ) -> list[list[tuple[int, Detection]]]:
    """Boxes for the gaps of each track: ``(track id, interpolated detection)`` per frame.

    A gap is up to ``max_gap`` consecutive frames without the track's face, between two frames
    that have it at nearby places (:func:`~unmask.faces.track.same_place`). The box is interpolated
    linearly by position in the sample; the score is 0.0 (no detector saw it); no landmarks.
    """
    bridged: list[list[tuple[int, Detection]]] = [[] for _ in detections]
    if max_gap <= 0:
        return bridged
    seen: dict[int, list[tuple[int, Detection]]] = {}
    for t, (dets, ids) in enumerate(zip(detections, track_ids)):
        for det, track in zip(dets, ids):
            seen.setdefault(track, []).append((t, det))
    for track, hits in seen.items():
        for (t0, a), (t1, b) in zip(hits, hits[1:]):
            if not 1 <= t1 - t0 - 1 <= max_gap or not same_place(a.box, b.box):
                continue
            for t in range(t0 + 1, t1):
                w = (t - t0) / (t1 - t0)
                box = tuple((1 - w) * u + w * v for u, v in zip(a.box, b.box))
                bridged[t].append((track, Detection(box, 0.0)))
    return bridged


def search_window(a, b, frame_size: tuple[int, int], grow: float) -> tuple[tuple[int, int, int, int], float]:
    """Where a face seen at boxes ``a`` and ``b`` (in the frames around a gap) should be between them.

    Returns:
        The window ``(x1, y1, x2, y2)``, both boxes and the path between them grown by ``grow``
        face sides on every side and clipped to the frame, and the face side (the larger box's).
    """
    side = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1])
    width, height = frame_size
    pad = grow * side
    window = (max(0, int(min(a[0], b[0]) - pad)), max(0, int(min(a[1], b[1]) - pad)),
              min(width, int(max(a[2], b[2]) + pad + 1)), min(height, int(max(a[3], b[3]) + pad + 1)))
    return window, side


def find_near(detector: FaceDetector, image: np.ndarray, window: tuple[int, int, int, int], side: float,
              face_px: Sequence[int] = NEAR_FACE_PX, max_side_px: int = NEAR_MAX_SIDE_PX) -> list[Detection]:
    """Faces of about ``side`` px (half to twice) inside ``window`` of ``image``, in frame pixels.

    The window is enlarged (or shrunk) so the expected face is ``face_px[0]`` px wide, then
    ``face_px[1]`` ... until one size finds a face, its longer side never above ``max_side_px``.
    ``detector`` brings its own score floor and contrast settings; its frame-size settings are
    replaced per window.
    """
    x1, y1, x2, y2 = window
    patch = image[y1:y2, x1:x2]
    if patch.size == 0:
        return []
    longer = max(patch.shape[:2])
    for px in face_px:
        target = min(max(1, round(longer * px / side)), max_side_px)
        found = detector.with_settings(max_side_px=target, min_side_px=target).detect([patch])[0]
        found = [_moved(d, x1, y1) for d in found if 0.5 <= max(d.box[2] - d.box[0], d.box[3] - d.box[1]) / side <= 2]
        if found:
            return found
    return []


def _moved(det: Detection, dx: float, dy: float) -> Detection:
    """``det`` shifted by ``(dx, dy)`` (window pixels to frame pixels)."""
    box = (det.box[0] + dx, det.box[1] + dy, det.box[2] + dx, det.box[3] + dy)
    points = None if det.landmarks is None else tuple(v + (dx if k % 2 == 0 else dy) for k, v in enumerate(det.landmarks))
    return Detection(box, det.score, points)


def _pairs(before: list[Detection], after: list[Detection]) -> list[tuple[Detection, Detection]]:
    """Pair each face of the frame before a gap with the nearest unpaired face of the frame after
    it (largest first); a face with no partner is paired with itself."""
    left, pairs = list(after), []
    for a in sorted(before, key=lambda d: -d.area):
        b = min(left, key=lambda d: distance(a.box, d.box), default=a)
        if b in left:
            left.remove(b)
        pairs.append((a, b))
    return pairs + [(b, b) for b in left]


class FaceExtractor:
    """Detect, track and crop faces in sampled frames.

    Args:
        detector: a :class:`FaceDetector`, or the name of one (built with default settings).
        margin: crop side over the longer box side.
        size_px: side of the saved crops.
        keep: ``"largest"`` face per frame, or ``"all"`` faces linked into tracks.
        batch_size: frames per detector call.
        second_pass: the detector for the frames the first found no face in (usually
            ``detector.with_settings(...)``); None: one pass only.
        bridge_max_gap: bridge track gaps of up to this many sampled frames; 0: never.
        second_pass_probe: when the first pass missed more frames than this, the second pass looks
            first at this many of them, spread evenly, and at the rest only if it found a face
            there: a video with no face costs at most this many second-pass frames. 0: all.
        near_pass: the detector for the third pass, which searches the frames still without a
            face near the faces of the frames around them (:func:`find_near`; usually
            ``detector.with_settings(enhance=True, clahe_tiles=4, min_score=0.7)``); None: off.
            It runs only where the passes before found faces in at least two frames (a lone
            box, perhaps a false one, is not followed), and reaches at most ``near_reach``
            frames beyond the first and last of them.
    """

    def __init__(self, detector: FaceDetector | str = DEFAULT_DETECTOR, *, margin: float = 1.3,
                 size_px: int = 224, keep: str = "largest", batch_size: int = 16,
                 second_pass: FaceDetector | None = None, bridge_max_gap: int = 0, second_pass_probe: int = 0,
                 near_pass: FaceDetector | None = None, near_reach: int = 2):
        check_crop_settings(margin=margin, size=size_px, keep=keep)
        self.detector = create_detector(detector) if isinstance(detector, str) else detector
        self.margin, self.size_px, self.keep, self.batch_size = margin, size_px, keep, batch_size
        self.second_pass, self.bridge_max_gap, self.second_pass_probe = second_pass, bridge_max_gap, second_pass_probe
        self.near_pass, self.near_reach = near_pass, near_reach

    def detect(self, frames: Sequence[Frame]) -> tuple[list[list[Detection]], list[list[str]]]:
        """All passes: per frame its detections and, for each, the pass that found it."""
        detections = detect_frames(self.detector, frames, self.batch_size)
        passes = [["1"] * len(d) for d in detections]
        self._second_pass(frames, detections, passes)
        self._near_pass(frames, detections, passes)
        return detections, passes

    def _second_pass(self, frames, detections, passes) -> None:
        """Fill ``detections`` and ``passes`` of the frames the first pass missed, in place."""
        missed = [i for i, d in enumerate(detections) if not d]
        if self.second_pass is None or not missed:
            return
        todo = [missed]
        if self.second_pass_probe and len(missed) > self.second_pass_probe:
            picks = set(evenly_spaced(len(missed), self.second_pass_probe))
            todo = [[m for k, m in enumerate(missed) if k in picks],
                    [m for k, m in enumerate(missed) if k not in picks]]
        for batch in todo:
            found = detect_frames(self.second_pass, [frames[i] for i in batch], self.batch_size)
            for i, dets in zip(batch, found):
                detections[i], passes[i] = dets, ["2"] * len(dets)
            if not any(found):  # nothing in the probe: most likely no face to find
                break

    def _near_pass(self, frames, detections, passes) -> None:
        """Search the frames still without a face near the faces of the frames around them, in place."""
        seen = [i for i, d in enumerate(detections) if d]
        if self.near_pass is None or len(seen) < 2 or len(seen) == len(frames):
            return
        frame_size = (frames[0].image.shape[1], frames[0].image.shape[0])
        for t in range(seen[0] - self.near_reach, seen[-1] + self.near_reach + 1):
            if not 0 <= t < len(frames) or detections[t]:
                continue
            before = max((i for i in range(t) if detections[i]), default=None)  # this pass's finds count
            after = next((i for i in range(t + 1, len(frames)) if detections[i]), None)
            around = [detections[i] for i in (before, after) if i is not None]
            if self.keep == "largest":
                around = [[max(d, key=lambda x: x.area)] for d in around]
            pairs = _pairs(*around) if len(around) == 2 else [(a, a) for a in around[0]]
            grow = 1.0 if len(around) == 2 else float(min(abs(t - i) for i in (before, after) if i is not None))
            found: list[Detection] = []
            for a, b in pairs:
                window, side = search_window(a.box, b.box, frame_size, grow)
                for det in find_near(self.near_pass, frames[t].image, window, side):
                    if all(iou(det.box, f.box) < 0.5 for f in found):
                        found.append(det)
            detections[t], passes[t] = found, ["3"] * len(found)

    def __call__(self, frames: Sequence[Frame]) -> list[FaceCrop]:
        """Return the face crops found in ``frames``, in frame order (then by track)."""
        return self.crop(frames, self.detect(frames))

    def crop(self, frames: Sequence[Frame], found: tuple[list[list[Detection]], list[list[str]]]) -> list[FaceCrop]:
        """Keep the faces ``keep`` asks for, link them into tracks, bridge gaps and cut the crops.

        Args:
            found: what :meth:`detect` returned for ``frames`` (apart, so that callers can time the two).
        """
        detections, passes = found
        if self.keep == "largest":
            order = [sorted(range(len(d)), key=lambda j: -d[j].area)[:1] for d in detections]
            detections = [[d[j] for j in o] for d, o in zip(detections, order)]
            passes = [[p[j] for j in o] for p, o in zip(passes, order)]
            track_ids = [[0] * len(d) for d in detections]
        else:
            track_ids = assign_tracks(detections)
        bridged = bridge_gaps(detections, track_ids, self.bridge_max_gap)
        crops = []
        for frame, dets, ids, how, extra in zip(frames, detections, track_ids, passes, bridged):
            found = [(track_id, det, p) for det, track_id, p in zip(dets, ids, how)]
            found += [(track_id, det, "bridged") for track_id, det in extra]
            for track_id, det, p in sorted(found, key=lambda x: x[0]):
                image = crop_face(frame.image, det.box, margin=self.margin, size_px=self.size_px)
                square = square_box(det.box, (frame.image.shape[1], frame.image.shape[0]), self.margin)
                crops.append(FaceCrop(frame.index, frame.time_s, track_id, det.score, det.box, image, p,
                                      det.landmarks, square))
        return crops

"""Frames in, face crops out: the face step that prepare, predict and explain all call.

Four passes and bridged gaps:

1. The first pass runs the detector on every sampled frame at reduced size (640 px): fast, and it
   finds the faces of ordinary footage.
2. Only the frames where it found nothing go to the second pass: the same detector's weights with
   other settings (larger frames, contrast-equalised luma), which finds small, dark and turned
   faces at a few times the cost. Ordinary clips never reach it, so they keep the first pass's speed.
   After it, the small-face pass: the frames still without a face and more than ``near_reach``
   sampled frames from any face these two passes saw (all the frames, in a video where they saw
   none), if the frame is larger than these passes looked at it, are looked at in full (up to
   1920 px) with a lower face-size floor: a face a few dozen pixels wide in a 1080p frame is under
   the earlier passes' floor and near the detector's smallest once shrunk. It is the costliest
   pass, so only such frames reach it, probed first as in the second pass; its finds guide the
   third pass as the first two passes' do.
3. The frames still without a face, in a video where the passes before found one in at least two
   frames, are searched where the face should be, from where those passes saw it at most two
   sampled frames away: a window a few face widths across, enlarged so the face is 80, 120, then
   160 px wide, its luma contrast-equalised on a grid of face-sized tiles, with a lower score
   floor (where to look is known, so a weaker response is trusted there). With ``keep="all"``,
   only frames where no face at all was found are searched (each face of the frames around in
   its own window); a frame where one of two people was found is left to bridging.
4. A face track with a short gap (sampled frames where no pass found its face, between two
   frames where it was found at nearby places) is bridged: the box is interpolated and the crop
   cut, marked ``det_pass="bridged"``, so the gap is reported in the manifest, not dropped.

Each crop records how it was found in ``FaceCrop.det_pass``: ``"1"``, ``"2"``, ``"small"``, ``"3"`` or
``"bridged"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from unmask.errors import SettingError
from unmask.faces.crop import DEFAULT_MARGIN, cut_square, square_box
from unmask.faces.detectors import DEFAULT_DETECTOR, Detection, FaceDetector, create_detector
from unmask.faces.track import assign_tracks, distance, iou, same_place
from unmask.video.reader import Frame
from unmask.video.sampling import evenly_spaced

KEEP_MODES = ("largest", "all")
DET_PASSES = ("1", "2", "small", "3", "bridged")
# Face widths (window pixels) the third pass enlarges its window to, in turn until one finds the
# face: a dim, noisy face that MTCNN misses at one scale it often finds at another (hard set).
NEAR_FACE_PX = (80, 120, 160)
# The largest side a third-pass window is enlarged to: a window spanning most of a 1080p frame (two
# sightings far apart) at 160 px per 40 px face would be 6000 px wide, seconds per try.
NEAR_MAX_SIDE_PX = 1280
# A face seen on both sides of a gap that moved farther than this many face widths is searched for
# near each sighting on its own: the line between them would make a window of most of the frame.
NEAR_MAX_SPAN = 3.0
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
        det_pass: ``"1"`` (first pass), ``"2"`` (second pass), ``"small"`` (the frame looked at in
            full, far from any face the first two passes saw), ``"3"`` (searched near the face of
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
        raise SettingError(
            f"margin must be at least 1.0 (the face box itself) and at most {MAX_MARGIN}, not {margin}", "margin"
        )
    if not 8 <= size <= MAX_SIZE_PX:
        raise SettingError(f"size must lie between 8 and {MAX_SIZE_PX} pixels, not {size}", "size")


def detect_frames(detector: FaceDetector, frames: Sequence[Frame], batch_size: int = 16) -> list[list]:
    """Run ``detector`` over ``frames`` in batches; one list of detections per frame."""
    detections = []
    for start in range(0, len(frames), batch_size):
        detections.extend(detector.detect([f.image for f in frames[start : start + batch_size]]))
    return detections


def bridge_gaps(
    detections: list[list[Detection]], track_ids: list[list[int]], max_gap: int
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


def expected_places(near: dict[int, list[Detection]], t: int) -> list[tuple[tuple[float, ...], float]]:
    """Where each face seen in the frames around frame ``t`` should be in it, and how far from there.

    Args:
        near: frame -> its faces, for the nearest frame with faces before ``t`` and the nearest
            after it (either may be missing).

    Returns:
        Per face, ``(expected box, radius)``: the radius is in face widths (centre distance over
        the mean side, :func:`~unmask.faces.track.distance`). A face seen on both sides at most
        :data:`NEAR_MAX_SPAN` widths apart is expected on the line between its two boxes (radius
        1 plus half the way it moved); a face seen on one side, or that moved farther, where it
        was seen, with a radius of one width per frame away.
    """
    (t0, before), *rest = sorted(near.items())
    if not rest:
        return [(d.box, float(abs(t - t0))) for d in before]
    ((t1, after),) = rest
    places = []
    for a, b in _pairs(before, after):
        if a is not None and b is not None and distance(a.box, b.box) <= NEAR_MAX_SPAN:
            w = (t - t0) / (t1 - t0)
            box = tuple((1 - w) * u + w * v for u, v in zip(a.box, b.box))
            places.append((box, 1.0 + distance(a.box, b.box) / 2))
            continue
        places += [(d.box, float(abs(t - i))) for d, i in ((a, t0), (b, t1)) if d is not None]
    return places


def search_window(expected, radius: float, frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of the frame that holds every face of the expected box's size whose centre lies
    within ``radius`` face widths of the expected box's: that box grown by ``radius + 0.5``
    widths on every side, clipped to the frame (``frame_size``: width, height)."""
    side = max(expected[2] - expected[0], expected[3] - expected[1])
    pad = (radius + 0.5) * side
    width, height = frame_size
    return (
        max(0, int(expected[0] - pad)),
        max(0, int(expected[1] - pad)),
        min(width, int(expected[2] + pad + 1)),
        min(height, int(expected[3] + pad + 1)),
    )


def find_near(
    detector: FaceDetector,
    image: np.ndarray,
    expected,
    radius: float,
    face_px: Sequence[int] = NEAR_FACE_PX,
    max_side_px: int = NEAR_MAX_SIDE_PX,
) -> list[Detection]:
    """Faces of about the ``expected`` box's size (half to twice) whose centres lie within
    ``radius`` face widths of its centre, in frame pixels.

    The :func:`search_window` is enlarged (or shrunk) so the expected face is ``face_px[0]`` px
    wide, then ``face_px[1]`` ... until one size finds such a face, its longer side never above
    ``max_side_px``. Only such faces stop the search: another face in the window (a neighbour's,
    with ``keep="all"``) does not. ``detector`` brings its own score floor and contrast settings;
    its frame-size settings are replaced per window.
    """
    x1, y1, x2, y2 = search_window(expected, radius, (image.shape[1], image.shape[0]))
    patch = image[y1:y2, x1:x2]
    if patch.size == 0:
        return []
    side = max(expected[2] - expected[0], expected[3] - expected[1])
    longer = max(patch.shape[:2])
    targets = dict.fromkeys(min(max(1, round(longer * px / side)), max_side_px) for px in face_px)  # once each
    for target in targets:
        found = [
            _moved(d, x1, y1) for d in detector.with_settings(max_side_px=target, min_side_px=target).detect([patch])[0]
        ]
        found = [
            d
            for d in found
            if 0.5 <= max(d.box[2] - d.box[0], d.box[3] - d.box[1]) / side <= 2 and distance(d.box, expected) <= radius
        ]
        if found:
            return found
    return []


def _moved(det: Detection, dx: float, dy: float) -> Detection:
    """``det`` shifted by ``(dx, dy)`` (window pixels to frame pixels)."""
    box = (det.box[0] + dx, det.box[1] + dy, det.box[2] + dx, det.box[3] + dy)
    points = (
        None if det.landmarks is None else tuple(v + (dx if k % 2 == 0 else dy) for k, v in enumerate(det.landmarks))
    )
    return Detection(box, det.score, points)


def _pairs(before: list[Detection], after: list[Detection]) -> list[tuple[Detection | None, Detection | None]]:
    """Pair each face of the frame before a gap with the nearest unpaired face of the frame after
    it (largest first); a face with no partner gets None."""
    left, pairs = list(after), []
    for a in sorted(before, key=lambda d: -d.area):
        b = min(left, key=lambda d: distance(a.box, d.box), default=None)
        if b is not None:
            left.remove(b)
        pairs.append((a, b))
    return pairs + [(None, b) for b in left]


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
            face where the faces of the frames around them should be (:func:`find_near`; usually
            ``detector.with_settings(enhance=True, clahe_tiles=4, min_score=0.7)``); None: off.
            It runs only where the passes before found faces in at least two frames (a lone
            box, perhaps a false one, is not followed), and only on frames at most
            ``near_reach`` sampled frames from one of theirs.
        small_face_pass: the detector for the frames more than ``near_reach`` sampled frames from
            any face passes 1 and 2 saw (all frames, when they saw none), run on frames larger
            than those passes looked at them (usually ``detector.with_settings(max_side_px=1920,
            min_face_px=12, enhance=True)``); None: off. Its finds guide the third pass.
        small_face_probe: as ``second_pass_probe``, for the small-face pass.
    """

    def __init__(
        self,
        detector: FaceDetector | str = DEFAULT_DETECTOR,
        *,
        margin: float = DEFAULT_MARGIN,
        size_px: int = 224,
        keep: str = "largest",
        batch_size: int = 16,
        second_pass: FaceDetector | None = None,
        bridge_max_gap: int = 0,
        second_pass_probe: int = 0,
        near_pass: FaceDetector | None = None,
        near_reach: int = 2,
        small_face_pass: FaceDetector | None = None,
        small_face_probe: int = 0,
    ):
        check_crop_settings(margin=margin, size=size_px, keep=keep)
        self.detector = create_detector(detector) if isinstance(detector, str) else detector
        self.margin, self.size_px, self.keep, self.batch_size = margin, size_px, keep, batch_size
        self.second_pass, self.bridge_max_gap, self.second_pass_probe = second_pass, bridge_max_gap, second_pass_probe
        self.near_pass, self.near_reach = near_pass, near_reach
        self.small_face_pass, self.small_face_probe = small_face_pass, small_face_probe

    def detect(self, frames: Sequence[Frame]) -> tuple[list[list[Detection]], list[list[str]]]:
        """All passes: per frame its detections and, for each, the pass that found it."""
        detections = detect_frames(self.detector, frames, self.batch_size)
        passes = [["1"] * len(d) for d in detections]
        self._second_pass(frames, detections, passes)
        self._small_face_pass(frames, detections, passes)
        self._near_pass(frames, detections, passes)
        return detections, passes

    def _second_pass(self, frames, detections, passes) -> None:
        """Fill ``detections`` and ``passes`` of the frames the first pass missed, in place."""
        missed = [i for i, d in enumerate(detections) if not d]
        if self.second_pass is not None:
            self._probed(self.second_pass, "2", missed, self.second_pass_probe, frames, detections, passes)

    def _small_face_pass(self, frames, detections, passes) -> None:
        """Look in full at the large frames far from every face passes 1 and 2 saw, in place."""
        if self.small_face_pass is None:
            return
        sides = [d.max_side_px for d in (self.detector, self.second_pass) if d is not None]
        if 0 in sides:  # an earlier pass already looked at full resolution
            return
        seen_at = max(sides)
        seen = [i for i, d in enumerate(detections) if d]
        far = [
            t
            for t, frame in enumerate(frames)
            if max(frame.image.shape[:2]) > seen_at and all(abs(t - i) > self.near_reach for i in seen)
        ]
        self._probed(self.small_face_pass, "small", far, self.small_face_probe, frames, detections, passes)

    def _probed(self, detector, label, todo, probe, frames, detections, passes) -> None:
        """Run ``detector`` on the frames ``todo``, filling ``detections`` and ``passes`` in place;
        with more than ``probe`` of them, on that many spread evenly first, and on the rest only if
        it found a face there."""
        if not todo:
            return
        batches = [todo]
        if probe and len(todo) > probe:
            picks = set(evenly_spaced(len(todo), probe))
            batches = [[m for k, m in enumerate(todo) if k in picks], [m for k, m in enumerate(todo) if k not in picks]]
        for batch in batches:
            found = detect_frames(detector, [frames[i] for i in batch], self.batch_size)
            for i, dets in zip(batch, found):
                detections[i], passes[i] = dets, [label] * len(dets)
            if not any(found):  # nothing in the probe: most likely no face to find
                break

    def _near_pass(self, frames, detections, passes) -> None:
        """Search the frames still without a face near the faces the passes before saw at most
        ``near_reach`` frames away (:func:`expected_places`, :func:`find_near`), in place.

        Only the earlier passes' sightings guide it, never its own finds: a weak find cannot
        lead the search on to the next frame.
        """
        seen = [i for i, d in enumerate(detections) if d]
        if self.near_pass is None or len(seen) < 2 or len(seen) == len(frames):
            return
        faces = {i: detections[i] if self.keep == "all" else [max(detections[i], key=lambda d: d.area)] for i in seen}
        for t in range(len(frames)):
            if detections[t]:
                continue
            around = (max((i for i in seen if i < t), default=None), next((i for i in seen if i > t), None))
            near = {i: faces[i] for i in around if i is not None and abs(t - i) <= self.near_reach}
            if not near:
                continue
            found: list[Detection] = []
            for expected, radius in expected_places(near, t):
                for det in find_near(self.near_pass, frames[t].image, expected, radius):
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
                square = square_box(det.box, (frame.image.shape[1], frame.image.shape[0]), self.margin)
                crops.append(
                    FaceCrop(
                        frame.index,
                        frame.time_s,
                        track_id,
                        det.score,
                        det.box,
                        cut_square(frame.image, square, self.size_px),
                        p,
                        det.landmarks,
                        square,
                    )
                )
        return crops

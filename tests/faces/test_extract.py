import cv2
import numpy as np
import pytest

from unmask.demo import FACE_BOXES, load_portraits
from unmask.faces import Detection, FaceExtractor, create_detector
from unmask.faces.extract import bridge_gaps
from unmask.faces.track import iou
from unmask.video import Frame


def det(x, y, side=50.0, score=0.99):
    return Detection((x, y, x + side, y + side), score)


def test_a_short_gap_is_bridged_with_the_interpolated_box():
    detections = [[det(100, 100)], [], [], [det(130, 100)]]
    bridged = bridge_gaps(detections, [[0], [], [], [0]], max_gap=2)
    assert [len(b) for b in bridged] == [0, 1, 1, 0]
    (track, first), = bridged[1]
    assert track == 0 and first.score == 0.0 and first.landmarks is None
    assert first.box == pytest.approx((110, 100, 160, 150))
    assert bridged[2][0][1].box == pytest.approx((120, 100, 170, 150))


def test_long_gaps_far_jumps_and_max_gap_zero_are_not_bridged():
    ids = [[0], [], [], [], [0]]
    assert bridge_gaps([[det(0, 0)], [], [], [], [det(5, 0)]], ids, max_gap=2) == [[]] * 5
    assert bridge_gaps([[det(0, 0)], [], [det(400, 0)]], [[0], [], [0]], max_gap=2) == [[]] * 3
    assert bridge_gaps([[det(0, 0)], [], [det(5, 0)]], [[0], [], [0]], max_gap=0) == [[]] * 3


def test_each_track_is_bridged_on_its_own():
    detections = [[det(0, 0), det(300, 0)], [det(300, 0)], [det(10, 0), det(300, 0)]]
    bridged = bridge_gaps(detections, [[0, 1], [1], [0, 1]], max_gap=1)
    assert [[t for t, _ in b] for b in bridged] == [[], [0], []]


@pytest.fixture(scope="module")
def astronaut():
    return load_portraits()["astronaut"]


def dark_small_face(photo, face_px=40, gain=0.25):
    """A 1080p frame with a 40 px, dim face: too small and flat for the 640 px first pass."""
    x1, _, x2, _ = FACE_BOXES["astronaut"]
    small = cv2.resize(photo, None, fx=face_px / (x2 - x1), fy=face_px / (x2 - x1), interpolation=cv2.INTER_AREA)
    canvas = np.full((1080, 1920, 3), 60, np.uint8)
    canvas[400:400 + small.shape[0], 900:900 + small.shape[1]] = small
    return (canvas.astype(np.float32) * gain).astype(np.uint8)


def test_the_second_pass_looks_only_at_frames_the_first_missed(astronaut):
    first = create_detector("mtcnn")
    calls = []

    class Counting:  # the real second pass, recording which frames it is given
        def __init__(self, detector):
            self.detector = detector

        def detect(self, images):
            calls.append(len(images))
            return self.detector.detect(images)

    frames = [Frame(0, 0.0, cv2.resize(astronaut, (1920, 1080))), Frame(1, 0.1, dark_small_face(astronaut))]
    second = Counting(first.with_settings(max_side_px=1280, min_side_px=1280, enhance=True))
    crops = FaceExtractor(first, size_px=64, second_pass=second)(frames)
    assert calls == [1]
    assert [(c.frame_index, c.det_pass) for c in crops] == [(0, "1"), (1, "2")]
    assert [c.frame_index for c in FaceExtractor(first, size_px=64)(frames)] == [0]  # one pass alone misses it


def test_a_frame_without_a_face_between_two_with_it_gives_a_bridged_crop(astronaut):
    blank = np.full_like(astronaut, 128)
    frames = [Frame(i, i / 10, im) for i, im in enumerate([astronaut, blank, astronaut])]
    crops = FaceExtractor("mtcnn", size_px=64, bridge_max_gap=1)(frames)
    assert [(c.frame_index, c.det_pass) for c in crops] == [(0, "1"), (1, "bridged"), (2, "1")]
    assert iou(crops[1].box, FACE_BOXES["astronaut"]) > 0.8 and crops[1].score == 0.0
    assert [c.frame_index for c in FaceExtractor("mtcnn", size_px=64)(frames)] == [0, 2]


def test_landmarks_come_in_frame_pixels_inside_the_face(astronaut):
    big = cv2.resize(astronaut, (1024, 1024))  # shrunk to 640 for detection: points must be mapped back
    found = create_detector("mtcnn").detect([big])[0][0]
    points = np.asarray(found.landmarks).reshape(5, 2)
    x1, y1, x2, y2 = found.box
    assert ((points[:, 0] > x1) & (points[:, 0] < x2) & (points[:, 1] > y1) & (points[:, 1] < y2)).all()
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    assert left_eye[0] < right_eye[0] and max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert create_detector("haar").detect([astronaut])[0][0].landmarks is None


def test_with_settings_shares_the_weights_and_rejects_unknown_settings():
    first = create_detector("mtcnn")
    second = first.with_settings(max_side_px=1280, enhance=True)
    assert second._mtcnn is first._mtcnn and (first.max_side_px, first.enhance) == (640, False)
    with pytest.raises(TypeError, match="unknown settings"):
        first.with_settings(max_side=1)


class Scripted:
    """A second pass that finds a face only in the frames whose first pixel is 255, and records calls."""

    def __init__(self):
        self.calls = []

    def detect(self, images):
        self.calls.append(len(images))
        return [[det(10, 10)] if im[0, 0, 0] == 255 else [] for im in images]


def frames_of(values):
    return [Frame(i, i / 10, np.full((100, 100, 3), v, np.uint8)) for i, v in enumerate(values)]


def test_the_second_pass_probes_spread_frames_and_stops_when_they_show_no_face():
    first = create_detector("mtcnn")  # finds nothing in flat frames
    second = Scripted()
    assert FaceExtractor(first, size_px=32, second_pass=second, second_pass_probe=4)(frames_of([0] * 20)) == []
    assert second.calls == [4]
    second = Scripted()
    values = [0] * 20
    values[0] = values[19] = 255  # probes 0, 6, 13, 19 (evenly spread) see a face: the rest are looked at
    crops = FaceExtractor(first, size_px=32, second_pass=second, second_pass_probe=4)(frames_of(values))
    assert second.calls == [4, 16] and [c.frame_index for c in crops] == [0, 19]
    second = Scripted()
    FaceExtractor(first, size_px=32, second_pass=second, second_pass_probe=0)(frames_of([0] * 20))
    assert sum(second.calls) == 20  # in batches of 16

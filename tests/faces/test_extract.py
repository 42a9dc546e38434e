import cv2
import numpy as np
import pytest

from unmask.demo import FACE_BOXES, load_portraits
from unmask.faces import Detection, FaceExtractor, create_detector
from unmask.faces.detectors import FaceDetector
from unmask.faces.extract import NEAR_MAX_SIDE_PX, bridge_gaps, expected_places, find_near
from unmask.faces.track import iou
from unmask.video import Frame


def det(x, y, side=50.0, score=0.99):
    return Detection((x, y, x + side, y + side), score)


def test_a_short_gap_is_bridged_with_the_interpolated_box():
    detections = [[det(100, 100)], [], [], [det(130, 100)]]
    bridged = bridge_gaps(detections, [[0], [], [], [0]], max_gap=2)
    assert [len(b) for b in bridged] == [0, 1, 1, 0]
    ((track, first),) = bridged[1]
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
    canvas[400 : 400 + small.shape[0], 900 : 900 + small.shape[1]] = small
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


class Squares(FaceDetector):
    """Finds the white squares at least 70 px wide in the image it is given, so that the frame size
    each pass brings the frame to decides what it sees; its landmarks are the square's centre."""

    name = "squares"

    def _detect_batch(self, images):
        out = []
        for image in images:
            _, _, stats, _ = cv2.connectedComponentsWithStats((image[..., 0] > 127).astype(np.uint8))
            out.append(
                [
                    ((x, y, x + w, y + h), 0.95, (x + w / 2, y + h / 2) * 5)
                    for x, y, w, h, _ in stats[1:]
                    if min(w, h) >= 70
                ]
            )
        return out


def squares_frame(*squares):
    """A black 1080p frame with white squares ``(x, y, side)``."""
    image = np.zeros((1080, 1920, 3), np.uint8)
    for x, y, side in squares:
        image[y : y + side, x : x + side] = 255
    return image


def squares_clip(*frames):
    return [Frame(i, i / 10, squares_frame(*squares)) for i, squares in enumerate(frames)]


def near_extractor(**kwargs):
    """The first pass sees the 1080p frame at 640 px: a 240 px square (80 px there) but not a 130 px one
    (43 px); the third pass enlarges a window so that a 240 px face is 80, 120 and 160 px: at 160
    px the 130 px square is 87 px, and found. (No CLAHE here: on flat white tiles it would break the
    squares into pieces; the hard-set test covers the contrast.)"""
    return FaceExtractor(Squares(), size_px=32, near_pass=Squares(min_score=0.7), **kwargs)


def test_the_third_pass_finds_a_face_near_its_neighbours_and_gives_it_in_frame_pixels():
    frames = squares_clip([(800, 400, 240)], [(850, 420, 130)], [(900, 400, 240)])
    crops = near_extractor()(frames)
    assert [(c.frame_index, c.det_pass) for c in crops] == [(0, "1"), (1, "3"), (2, "1")]
    assert crops[1].box == pytest.approx((850, 420, 980, 550), abs=2)
    assert crops[1].landmarks[:2] == pytest.approx((915, 485), abs=2)
    assert [c.frame_index for c in FaceExtractor(Squares(), size_px=32)(frames)] == [0, 2]  # the first alone misses it


def test_the_third_pass_takes_only_a_face_of_about_the_size_near_the_face_after_two_sightings():
    far = squares_clip([(800, 400, 240)], [(100, 900, 130)], [(900, 400, 240)])
    assert [c.frame_index for c in near_extractor()(far)] == [0, 2]  # outside the window: not looked at
    small = squares_clip([(800, 400, 300)], [(850, 420, 140)], [(900, 400, 300)])  # seen at 160 px: 75 px
    assert [c.frame_index for c in near_extractor()(small)] == [0, 2]  # under half the face's width: not it
    lone = squares_clip([(800, 400, 240)], [(850, 420, 130)], [(850, 420, 130)])
    assert [c.frame_index for c in near_extractor()(lone)] == [0]  # one sighting (perhaps a false box) is not followed


def test_the_third_pass_reaches_two_frames_beyond_the_first_and_last_sightings():
    frames = squares_clip(*[[(850, 420, 130)]] * 3, [(800, 400, 240)], [(820, 400, 240)], *[[(850, 420, 130)]] * 3)
    crops = near_extractor()(frames)
    assert [(c.frame_index, c.det_pass) for c in crops] == [(1, "3"), (2, "3"), (3, "1"), (4, "1"), (5, "3"), (6, "3")]
    assert [c.frame_index for c in near_extractor(near_reach=1)(frames)] == [2, 3, 4, 5]


def test_with_keep_all_the_third_pass_finds_each_face_near_its_own_track():
    frames = squares_clip(
        [(200, 400, 240), (1300, 400, 240)], [(250, 420, 130), (1350, 420, 130)], [(200, 400, 240), (1300, 400, 240)]
    )
    crops = near_extractor(keep="all")(frames)
    gap = [(c.track_id, c.det_pass, round(c.box[0])) for c in crops if c.frame_index == 1]
    assert [(t, p) for t, p, _ in gap] == [(0, "3"), (1, "3")]
    assert sorted(x for *_, x in gap) == pytest.approx([250, 1350], abs=2)


def test_a_third_pass_window_is_never_enlarged_beyond_its_cap():
    """A wide search (radius 8 face widths) makes a window of the whole frame: enlarged so a 100 px
    face is 80 px it would be 1536 px wide; it is capped, and the face is still found where it is."""
    seen = []

    class Recording(Squares):
        def _detect_batch(self, images):
            seen.extend(max(im.shape[:2]) for im in images)
            return super()._detect_batch(images)

    found = find_near(Recording(), squares_frame((1500, 800, 150)), (900, 500, 1000, 600), radius=8.0)
    assert seen and max(seen) <= NEAR_MAX_SIDE_PX
    seen.clear()
    assert find_near(Recording(), squares_frame(), (900, 500, 1000, 600), radius=8.0) == []
    assert seen == [NEAR_MAX_SIDE_PX]  # every enlargement capped to the same size: tried once, not three times
    assert [d.box for d in found] == [pytest.approx((1500, 800, 1650, 950), abs=2)]


def test_sightings_far_apart_are_searched_near_each_and_only_two_frames_from_them():
    """Faces seen only at opposite corners, frames 0 and 9: the frames next to each sighting are
    searched near it (never the whole frame between), the frames in the middle not at all."""
    a, b = (100, 100, 240), (1500, 700, 240)
    frames = squares_clip([a], *[[(110, 110, 130), (1510, 710, 130)]] * 8, [b])
    crops = near_extractor()(frames)
    assert [(c.frame_index, c.det_pass) for c in crops] == [(0, "1"), (1, "3"), (2, "3"), (7, "3"), (8, "3"), (9, "1")]
    assert [round(c.box[0]) for c in crops] == pytest.approx([100, 110, 110, 1510, 1510, 1500], abs=2)


def test_with_keep_all_a_neighbours_face_in_the_window_does_not_end_a_faces_search():
    """In the gap frame the right face (200 px) shows at a smaller enlargement than the left one
    (130 px) and lies inside the left face's window: the left face is still searched for until found."""
    frames = squares_clip(
        [(200, 400, 240), (560, 400, 240)], [(210, 420, 130), (570, 420, 200)], [(220, 400, 240), (580, 400, 240)]
    )
    crops = near_extractor(keep="all")(frames)
    gap = sorted((c.box, c.det_pass) for c in crops if c.frame_index == 1)
    assert [p for _, p in gap] == ["3", "3"]
    assert [box for box, _ in gap] == [
        pytest.approx((210, 420, 340, 550), abs=2),
        pytest.approx((570, 420, 770, 620), abs=2),
    ]


def test_a_face_is_expected_between_two_nearby_sightings_or_near_each_far_one():
    a, b = det(100, 100, 100), det(160, 100, 100)  # 0.6 face widths apart
    ((box, radius),) = expected_places({4: [a], 6: [b]}, 5)
    assert box == pytest.approx((130, 100, 230, 200)) and radius == pytest.approx(1.3)
    ((box, radius),) = expected_places({4: [a], 7: [b]}, 6)
    assert box == pytest.approx((140, 100, 240, 200))  # two thirds of the way
    far = det(1000, 600, 100)  # 10 widths away: searched for near each sighting, a width per frame away
    assert expected_places({4: [a], 6: [far]}, 5) == [(a.box, 1.0), (far.box, 1.0)]
    assert expected_places({3: [a]}, 5) == [(a.box, 2.0)]


class Counted(FaceDetector):
    """Squares that also counts the frames it was given per call."""

    name = "counted"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def _detect_batch(self, images):
        self.calls.append(len(images))
        return Squares._detect_batch(self, images)


def small_extractor(small=None, **kwargs):
    """Passes 1 and 2 see a 1080p frame at 640 and 1280 px: a 100 px square is 33 and 67 px there,
    under Squares' 70; the small-face pass sees it in full."""
    small = small or Squares(max_side_px=1920, min_face_px=12)
    return FaceExtractor(
        Squares(), size_px=32, second_pass=Squares(max_side_px=1280, min_side_px=1280), small_face_pass=small, **kwargs
    )


def test_the_small_face_pass_finds_a_face_passes_1_and_2_cannot_see_in_frame_pixels():
    frames = squares_clip(*[[(900 + 10 * t, 500, 100)] for t in range(3)])
    crops = small_extractor()(frames)
    assert [(c.frame_index, c.det_pass) for c in crops] == [(0, "small"), (1, "small"), (2, "small")]
    assert crops[1].box == pytest.approx((910, 500, 1010, 600), abs=2)
    off = FaceExtractor(Squares(), size_px=32, second_pass=Squares(max_side_px=1280, min_side_px=1280))
    assert off(frames) == []


def test_the_small_face_pass_looks_only_at_large_frames_far_from_every_face_seen():
    # frame 0: a face pass 1 sees; frames 1-2 are within near_reach of it, 3-5 are not
    frames = squares_clip([(800, 400, 240)], *[[(900, 500, 100)]] * 5)
    small = Counted(max_side_px=1920, min_face_px=12)
    crops = small_extractor(small)(frames)
    assert [(c.frame_index, c.det_pass) for c in crops] == [(0, "1"), (3, "small"), (4, "small"), (5, "small")]
    assert small.calls == [3]
    small = Counted(max_side_px=1920, min_face_px=12)  # 1280x720 frames: pass 2 saw them in full already
    small_frames = [Frame(i, i / 10, np.zeros((720, 1280, 3), np.uint8)) for i in range(6)]
    assert small_extractor(small)(small_frames) == [] and small.calls == []


def test_the_small_face_pass_probes_a_faceless_video_and_stops():
    small = Counted(max_side_px=1920, min_face_px=12)
    frames = squares_clip(*[[]] * 20)
    assert small_extractor(small, small_face_probe=4)(frames) == [] and small.calls == [4]

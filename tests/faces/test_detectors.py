import importlib.util

import cv2
import numpy as np
import pytest

from unmask.demo import FACE_BOXES, load_portraits
from unmask.errors import UnknownNameError, UnmaskError
from unmask.faces import DETECTORS, FaceExtractor, create_detector
from unmask.faces.track import iou
from unmask.video import Frame


@pytest.fixture(scope="module")
def astronaut():
    return load_portraits()["astronaut"]


@pytest.mark.parametrize("name", ["mtcnn", "haar"])
def test_detectors_find_the_face_in_a_real_photo(name, astronaut):
    found = create_detector(name).detect([astronaut])[0]
    assert found, f"{name} found no face"
    assert iou(found[0].box, FACE_BOXES["astronaut"]) > 0.5


def test_facenet_backend_detects_or_says_how_to_install(astronaut):
    if importlib.util.find_spec("facenet_pytorch") is None:
        with pytest.raises(UnmaskError, match="pip install --no-deps facenet-pytorch"):
            create_detector("facenet")
    else:
        found = create_detector("facenet", device="cpu").detect([astronaut, astronaut])
        assert len(found) == 2 and iou(found[0][0].box, FACE_BOXES["astronaut"]) > 0.5


def test_boxes_come_back_in_full_frame_pixels_when_frames_are_shrunk(astronaut):
    big = cv2.resize(astronaut, (1024, 1024))
    found = create_detector("mtcnn", max_side_px=512).detect([big])[0]
    expected = tuple(2 * v for v in FACE_BOXES["astronaut"])
    assert iou(found[0].box, expected) > 0.6


def test_no_face_in_a_blank_frame():
    assert create_detector("mtcnn").detect([np.full((240, 320, 3), 128, np.uint8)]) == [[]]


def test_min_face_px_drops_small_faces(astronaut):
    assert create_detector("mtcnn", min_face_px=200).detect([astronaut]) == [[]]


def test_unknown_detector_names_the_choices():
    with pytest.raises(UnknownNameError, match="Unknown face detector 'mtcn'.*facenet, haar, mtcnn.*'mtcnn'"):
        create_detector("mtcn")
    assert set(DETECTORS) == {"mtcnn", "facenet", "haar"}


def test_extractor_keeps_largest_or_all_faces_with_tracks():
    portraits = load_portraits()
    canvas = np.full((300, 640, 3), 90, np.uint8)
    small = cv2.resize(portraits["astronaut"], (256, 256))
    large = cv2.resize(portraits["hopper"], (320, 375))[:300, :]
    canvas[20:276, 10:266] = small
    canvas[:, 300:620] = large
    frames = [Frame(i, i / 10, canvas) for i in range(3)]
    largest = FaceExtractor("mtcnn", size_px=96)(frames)
    assert len(largest) == 3 and {c.track_id for c in largest} == {0}
    assert all(c.box[0] > 300 for c in largest)  # Hopper's face is the larger one
    assert largest[0].image.shape == (96, 96, 3)
    everyone = FaceExtractor("mtcnn", size_px=96, keep="all")(frames)
    assert len(everyone) == 6 and {c.track_id for c in everyone} == {0, 1}
    by_track = {c.track_id: c.box[0] > 300 for c in everyone}
    assert sorted(by_track.values()) == [False, True]

"""Face regions from five landmarks, and the share of a heatmap's evidence in each."""

import numpy as np
import pytest

from unmask.explain.regions import (
    ALL_REGIONS,
    REGIONS,
    landmarks_in_crop,
    main_region,
    mean_shares,
    region_masks,
    region_shares,
)

# A frontal face in a 64 px crop: eyes, nose tip, mouth corners (as MTCNN gives them: the person's
# left eye first, on the image's right).
FACE = np.array([[42.0, 26.0], [22.0, 26.0], [32.0, 36.0], [40.0, 46.0], [24.0, 46.0]])
# A pixel that any sensible drawing puts in each region (x, y)
INSIDE = {
    "eyes": (22, 26),
    "nose": (32, 34),
    "mouth": (32, 46),
    "forehead": (32, 15),
    "cheeks": (16, 38),
    "jaw": (32, 56),
    "outside": (1, 1),
}


def blob(x, y, shape=(64, 64), sigma=1.5):
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)).astype(np.float32)


def test_each_pixel_is_in_one_region_and_each_region_where_a_face_has_it():
    masks = region_masks(FACE, (64, 64))
    assert list(masks) == list(ALL_REGIONS)
    assert np.array_equal(sum(m.astype(int) for m in masks.values()), np.ones((64, 64), int))
    for name, (x, y) in INSIDE.items():
        assert masks[name][y, x], f"pixel {(x, y)} should be in {name}, is in {[n for n in masks if masks[n][y, x]]}"


@pytest.mark.parametrize("region", REGIONS)
def test_evidence_put_in_one_region_is_found_there(region):
    x, y = INSIDE[region]
    sigma = 1.0 if region in ("nose", "eyes") else 1.5
    shares = region_shares(blob(x, y, sigma=sigma), FACE)
    assert set(shares) == set(ALL_REGIONS) and sum(shares.values()) == pytest.approx(1, abs=1e-3)
    assert shares[region] > 0.7, shares
    assert main_region(shares) == region


def test_eye_evidence_is_not_mouth_evidence_and_landmarks_scale_to_the_map():
    eyes_only = blob(22, 26) + blob(42, 26)
    shares = region_shares(eyes_only, FACE)
    assert shares["eyes"] > 0.9 and shares["mouth"] < 0.01
    # the same map at 32 px with landmarks measured on the 64 px crop
    small = eyes_only[::2, ::2]
    assert region_shares(small, FACE, points_side_px=64)["eyes"] > 0.8
    # landmarks given in the crop's pixels but the map is half as large: without the scale, wrong
    assert region_shares(small, FACE)["eyes"] < 0.5


def test_a_face_turned_on_its_side_has_turned_regions():
    # rotate the face 90 degrees clockwise about the crop's centre: (x, y) -> (63 - y, x)
    turned = np.stack([63 - FACE[:, 1], FACE[:, 0]], axis=1)
    mouth_x, mouth_y = 63 - 46, 32
    assert region_shares(blob(mouth_x, mouth_y), turned)["mouth"] > 0.7
    assert region_shares(blob(63 - 56, 32), turned)["jaw"] > 0.7


def test_no_landmarks_or_a_flat_map_gives_no_shares():
    assert region_shares(blob(32, 46), None) is None
    assert region_shares(np.zeros((64, 64)), FACE) is None
    assert region_shares(np.full((64, 64), 0.5), FACE) is None


def test_landmarks_move_into_the_crop_and_persons_average_their_faces():
    frame_points = (FACE / 2 + [100, 50]).ravel()  # a 32 px face at (100, 50) in the frame
    assert np.allclose(landmarks_in_crop(frame_points, (100, 50, 132, 82), 64), FACE)
    assert landmarks_in_crop(None, (0, 0, 1, 1), 64) is None
    assert landmarks_in_crop([float("nan")] * 10, (0, 0, 1, 1), 64) is None
    a = dict.fromkeys(ALL_REGIONS, 0.0) | {"eyes": 1.0}
    b = dict.fromkeys(ALL_REGIONS, 0.0) | {"mouth": 1.0}
    mean = mean_shares([a, None, b])
    assert mean["eyes"] == mean["mouth"] == 0.5 and mean_shares([None]) is None

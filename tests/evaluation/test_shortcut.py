"""The shortcut check: heatmap mass outside the face, and the AUC with the surroundings blanked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unmask.evaluation.shortcut import (
    BLANK_RGB,
    blank_outside,
    check_shortcuts,
    face_boxes_in_crops,
    outside_share,
    shortcut_figures,
)

SIDE = 64
FACE = np.array([16.0, 16.0, 48.0, 48.0])  # the face box in the middle of a 64 px crop


def test_face_box_carried_into_the_crop():
    # frame box 100..200 inside the crop square 50..250 (200 px) -> a 100 px crop: 25..75
    rows = pd.DataFrame(
        {
            "x1": [100.0],
            "y1": [120.0],
            "x2": [200.0],
            "y2": [220.0],
            "crop_x1": [50.0],
            "crop_y1": [70.0],
            "crop_x2": [250.0],
            "crop_y2": [270.0],
        }
    )
    assert face_boxes_in_crops(rows, 100).tolist() == [[25.0, 25.0, 75.0, 75.0]]
    assert np.isnan(face_boxes_in_crops(rows.drop(columns=["crop_x1"]), 100)).all()


def test_outside_share_of_known_maps():
    corner, centre, flat = (np.zeros((SIDE, SIDE)) for _ in range(3))
    corner[:8, :8] = 1.0  # evidence in the top-left corner only: all outside the face
    centre[24:40, 24:40] = 1.0  # evidence on the face only
    shares = outside_share(np.stack([corner, centre, flat]), np.stack([FACE] * 3), SIDE)
    assert shares[0] == pytest.approx(1.0)
    assert shares[1] == pytest.approx(0.0)
    assert np.isnan(shares[2])  # a flat map points nowhere
    # the box is scaled to the map's size: a 32 px map of the 64 px crop's box
    small = np.zeros((1, 32, 32))
    small[0, 10:22, 10:22] = 1.0
    assert outside_share(small, FACE[None] / 2, 32)[0] == pytest.approx(0.0)


def test_blank_outside_keeps_the_face_only():
    image = np.full((SIDE, SIDE, 3), 7, np.uint8)
    blanked = blank_outside([image], FACE[None], SIDE)[0]
    assert (blanked[30, 30] == 7).all()
    assert (blanked[2, 2] == BLANK_RGB).all() and (blanked[60, 60] == BLANK_RGB).all()
    assert (image == 7).all()  # the input is left as it was


def _corner_marked_set(n_videos: int = 6, per_video: int = 3):
    """Fakes carry a white patch in the top-left corner (an inset); faces are alike noise."""
    rng = np.random.default_rng(0)
    images, labels, videos = [], [], []
    for v in range(n_videos):
        label = v % 2
        for _ in range(per_video):
            image = rng.integers(60, 200, (SIDE, SIDE, 3), dtype=np.uint8)
            if label:
                image[:10, :10] = 255
            images.append(image)
            labels.append(label)
            videos.append(f"v{v}")
    return images, labels, videos


def _corner_model(images):
    """A "model" that keys on the corner: p_fake is the corner's brightness."""
    return np.array([image[:10, :10].mean() / 255.0 for image in images])


def _corner_maps(images):
    maps = np.zeros((len(images), SIDE, SIDE), np.float32)
    maps[:, :10, :10] = 1.0
    return maps


def test_a_model_that_keys_on_the_corner_is_caught():
    images, labels, videos = _corner_marked_set()
    boxes = np.stack([FACE] * len(images))
    figures = shortcut_figures(images, labels, videos, boxes, SIDE, _corner_model, _corner_maps)
    assert figures["auc"] == pytest.approx(1.0)
    assert figures["auc_blanked"] == pytest.approx(0.5)  # every crop scores alike once blanked
    assert figures["auc_drop"] == pytest.approx(0.5)
    assert figures["outside_share"] == pytest.approx(1.0)
    assert figures["videos"] == 6 and figures["maps"] == 9


def test_a_model_that_keys_on_the_face_keeps_its_auc():
    images, labels, videos = _corner_marked_set()
    for image, label in zip(images, labels):
        image[28:36, 28:36] = 255 if label else 0  # the forgery's mark, on the face

    def face_model(crops):
        return np.array([crop[28:36, 28:36].mean() / 255.0 for crop in crops])

    figures = shortcut_figures(images, labels, videos, np.stack([FACE] * len(images)), SIDE, face_model)
    assert figures["auc"] == pytest.approx(1.0) and figures["auc_blanked"] == pytest.approx(1.0)
    assert figures["outside_share"] is None  # no heatmaps asked for


def test_check_shortcuts_on_a_trained_run(small_run, prepared):
    result, _ = small_run
    figures = check_shortcuts(result.run_dir, prepared, split="all", per_video=2)
    assert figures["crops"] == 24 and figures["videos"] == 12
    assert 0.0 <= figures["auc_blanked"] <= 1.0
    assert figures["maps"] == 0 or 0.0 <= figures["outside_share"] <= 1.0

import numpy as np
import pytest

from unmask.faces import crop_face, square_box


def test_square_box_is_square_centred_and_grown_by_the_margin():
    x1, y1, x2, y2 = square_box((100, 100, 140, 160), (640, 480), margin=1.3)
    assert x2 - x1 == y2 - y1 == 78  # 60 * 1.3
    assert abs((x1 + x2) / 2 - 120) <= 1 and abs((y1 + y2) / 2 - 130) <= 1


@pytest.mark.parametrize("box", [(0, 0, 50, 60), (600, 430, 640, 480), (-20, -10, 30, 40)])
def test_square_box_is_moved_inside_the_frame(box):
    x1, y1, x2, y2 = square_box(box, (640, 480), margin=1.5)
    assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
    assert x2 - x1 == y2 - y1


def test_square_box_shrinks_to_the_frame_when_it_cannot_fit():
    x1, y1, x2, y2 = square_box((10, 10, 300, 230), (320, 240), margin=2.0)
    assert (x2 - x1, y2 - y1) == (240, 240) and y1 == 0


def test_crop_face_returns_the_region_resized_and_leaves_the_frame_alone():
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[100:140, 150:190] = 255
    before = frame.copy()
    crop = crop_face(frame, (150, 100, 190, 140), margin=1.0, size_px=64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert crop[8:56, 8:56].min() == 255
    np.testing.assert_array_equal(frame, before)


def test_the_command_lines_default_margin_is_the_librarys():
    from typer.main import get_command

    from unmask.cli import app
    from unmask.data.config import PrepareConfig
    from unmask.faces.crop import DEFAULT_MARGIN

    margin = next(p for p in get_command(app).commands["prepare"].params if p.name == "margin")
    assert margin.default == DEFAULT_MARGIN
    assert PrepareConfig("folder").margin == DEFAULT_MARGIN

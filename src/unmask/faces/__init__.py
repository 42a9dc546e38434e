"""Stage 2: find faces in frames, link them into tracks, and cut square crops around them."""

from unmask.faces.crop import crop_face, square_box
from unmask.faces.detectors import DETECTORS, Detection, FaceDetector, create_detector
from unmask.faces.extract import FaceCrop, FaceExtractor
from unmask.faces.track import assign_tracks

__all__ = [
    "DETECTORS",
    "Detection",
    "FaceCrop",
    "FaceDetector",
    "FaceExtractor",
    "assign_tracks",
    "create_detector",
    "crop_face",
    "square_box",
]

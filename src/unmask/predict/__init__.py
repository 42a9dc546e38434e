"""Stage 8: one video or image in, a verdict and its evidence out (:class:`Detector`)."""

from unmask.predict.detector import IMAGE_SUFFIXES, STAGES, Detector, input_kind
from unmask.predict.explanation import explain_file
from unmask.predict.result import FrameScore, Heatmap, Prediction, TrackVerdict

__all__ = ["Detector", "FrameScore", "Heatmap", "IMAGE_SUFFIXES", "Prediction", "STAGES", "TrackVerdict",
           "explain_file", "input_kind"]

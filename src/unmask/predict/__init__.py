"""Stage 8: one video or image in, a verdict and its evidence out (:class:`Detector`).

Names are imported when first used, so that an exported detector judges without torch.
"""

from unmask._lazy import lazy_exports

_EXPORTS = {
    "Detector": "unmask.predict.detector",
    "IMAGE_SUFFIXES": "unmask.predict.detector",
    "STAGES": "unmask.predict.detector",
    "input_kind": "unmask.predict.detector",
    "explain_file": "unmask.predict.explanation",
    "FrameScore": "unmask.predict.result",
    "Heatmap": "unmask.predict.result",
    "Prediction": "unmask.predict.result",
    "TrackVerdict": "unmask.predict.result",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

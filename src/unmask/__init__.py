"""unmask: find deepfaked faces in videos, and show why.

``from unmask import Detector, Prediction`` gives the judge and its result; they are imported on
first use so that ``import unmask`` (and ``unmask --help``) stays fast.
"""

__version__ = "0.1.0"

_LAZY = {"Detector": "unmask.predict", "Prediction": "unmask.predict", "Heatmap": "unmask.predict",
         "TrackVerdict": "unmask.predict", "FrameScore": "unmask.predict"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unmask' has no attribute {name!r}")

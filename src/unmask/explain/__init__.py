"""Stage 7: why a face was judged fake: heatmaps, their faithfulness, overlays.

``from unmask.explain import explain`` gives the function; the package itself can be called as
it too (``unmask.explain(run, "clip.mp4", "why/")``), so that every stage is one call on
``unmask``, as ``unmask.train`` and ``unmask.evaluate`` are.
"""

import sys
import types

from unmask.explain.cam import EXPLAINERS, PAPER_METHODS, explain_batch
from unmask.explain.explainer import Explanation, explain, explain_crops, write_explanations
from unmask.explain.faithfulness import deletion_faithfulness
from unmask.explain.overlay import overlay_heatmap

__all__ = ["EXPLAINERS", "PAPER_METHODS", "Explanation", "deletion_faithfulness", "explain", "explain_batch",
           "explain_crops", "overlay_heatmap", "write_explanations"]


class _CallablePackage(types.ModuleType):
    """The package, callable as :func:`explain` (the stage's one call)."""

    def __call__(self, *args, **kwargs):
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

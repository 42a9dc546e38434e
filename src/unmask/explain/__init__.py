"""Stage 7: why a face was judged fake: heatmaps, their faithfulness, overlays.

Explaining a whole file (finding, cutting and scoring its faces first) is the judge's work:
:func:`unmask.predict.explain_file`, also ``unmask.explain_file`` and ``unmask explain``.
Names are imported when first used: the heatmaps need torch, a report's regions do not.
"""

from unmask._lazy import lazy_exports

_EXPORTS = {
    "EXPLAINERS": "unmask.explain.cam",
    "PAPER_METHODS": "unmask.explain.cam",
    "explain_batch": "unmask.explain.cam",
    "Explanation": "unmask.explain.explainer",
    "explain_crops": "unmask.explain.explainer",
    "write_explanations": "unmask.explain.explainer",
    "deletion_faithfulness": "unmask.explain.faithfulness",
    "overlay_heatmap": "unmask.explain.overlay",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

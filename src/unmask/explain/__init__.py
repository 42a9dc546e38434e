"""Stage 7: why a face was judged fake: heatmaps, their faithfulness, overlays.

Explaining a whole file (finding, cutting and scoring its faces first) is the judge's work:
:func:`unmask.predict.explain_file`, also ``unmask.explain_file`` and ``unmask explain``.
"""

from unmask.explain.cam import EXPLAINERS, PAPER_METHODS, explain_batch
from unmask.explain.explainer import Explanation, explain_crops, write_explanations
from unmask.explain.faithfulness import deletion_faithfulness
from unmask.explain.overlay import overlay_heatmap

__all__ = ["EXPLAINERS", "PAPER_METHODS", "Explanation", "deletion_faithfulness", "explain_batch", "explain_crops",
           "overlay_heatmap", "write_explanations"]

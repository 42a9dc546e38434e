"""Stage 7: why a face was judged fake: heatmaps, their faithfulness, overlays."""

from unmask.explain.cam import EXPLAINERS, PAPER_METHODS, explain_batch
from unmask.explain.faithfulness import deletion_faithfulness
from unmask.explain.overlay import overlay_heatmap

__all__ = ["EXPLAINERS", "PAPER_METHODS", "deletion_faithfulness", "explain_batch", "overlay_heatmap"]

"""Stage 6: judging a trained model: metrics, video-level aggregation, reports.

``from unmask.evaluation import evaluate`` gives the function (imported on first use).
"""

from unmask._lazy import lazy_exports

_EXPORTS = {
    "evaluate": "unmask.evaluation.evaluator",
    "EvalResult": "unmask.evaluation.evaluator",
    "format_metrics": "unmask.evaluation.evaluator",
    "make_table": "unmask.evaluation.table",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

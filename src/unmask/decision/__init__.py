"""From scores to decisions: calibration, costs and threshold, aggregation over frames and
people, the verdict, and the checkpoint a classifier is loaded from with its record.

It sits below training, evaluation and predict, which all decide the same way through it.
"""

from unmask._lazy import lazy_exports

_EXPORTS = {
    "Costs": "unmask.decision.calibration",
    "calibrated_p_fake": "unmask.decision.calibration",
    "decision_threshold": "unmask.decision.calibration",
    "aggregate_scores": "unmask.decision.aggregate",
    "aggregate_videos": "unmask.decision.aggregate",
    "decide_track": "unmask.decision.verdict",
    "decide_clip": "unmask.decision.verdict",
    "load_classifier": "unmask.decision.checkpoint",
    "read_metadata": "unmask.decision.checkpoint",
    "read_record": "unmask.decision.checkpoint",
    "CheckpointRecord": "unmask.decision.record",
    "score_crops": "unmask.decision.scoring",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

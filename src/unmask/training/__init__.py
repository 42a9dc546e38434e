"""Stage 5: cost-sensitive training: class weights, losses, calibration and the cost-based decision.

``from unmask.training import train`` gives the function (imported on first use: judging a
video needs the calibration of this package, not the training loop).
"""

from unmask._lazy import lazy_exports

_EXPORTS = {
    "train": "unmask.training.trainer",
    "TrainResult": "unmask.training.trainer",
    "TrainConfig": "unmask.training.config",
    "make_config": "unmask.training.config",
    "PRESETS": "unmask.training.config",
    "Costs": "unmask.decision.calibration",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

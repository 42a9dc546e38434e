"""The cost-sensitive decision: calibrated probabilities and the threshold that minimises expected cost.

The paper weighted its loss by class frequency but still decided by argmax, so the costs of its
errors never reached the decision. Here the user states what a missed fake and a false alarm
cost; temperature scaling (Guo et al., ICML 2017), fitted on the validation split, makes
``p_fake`` a probability one can act on; and the decision is the one with the lower expected
cost: call a face fake when ``p_fake * cost_miss > (1 - p_fake) * cost_false_alarm``.

Calibration fits a temperature *and* a bias on the fake log-odds (Platt scaling): class weights
shift the log-odds by a constant (log N_real / N_fake with balanced weights) that no temperature
can remove.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from unmask.errors import UnmaskError


@dataclass(frozen=True)
class Costs:
    """What each kind of error costs, in any unit (only the ratio matters)."""

    missed_fake: float = 1.0
    false_alarm: float = 1.0

    def __post_init__(self):
        if not (0 < self.missed_fake < float("inf") and 0 < self.false_alarm < float("inf")):  # nan too
            raise UnmaskError(f"Costs must be positive; got missed fake {self.missed_fake}, false alarm {self.false_alarm}")

    @property
    def threshold(self) -> float:
        """The Bayes threshold on a calibrated ``p_fake``: ``c_fa / (c_fa + c_miss)``."""
        return self.false_alarm / (self.false_alarm + self.missed_fake)


def fit_calibration(logits: np.ndarray, labels: np.ndarray, *, max_iter: int = 200) -> tuple[float, float]:
    """``(temperature, bias)`` minimising the log-loss of ``sigmoid((z_fake - z_real) / T + b)``.

    Args:
        logits: ``(n, 2)`` validation logits.
        labels: ``(n,)`` validation labels.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    margin = z[:, 1] - z[:, 0]
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # T = exp(log_t) stays positive
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t, bias], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(margin / log_t.exp() + bias, y)
        loss.backward()
        return loss

    if len(np.unique(labels)) == 2:  # one class: nothing to calibrate against
        optimiser.step(closure)
    return float(log_t.detach().exp().clamp(1e-2, 1e2)), float(bias.detach().clamp(-50, 50))


def p_fake(logits: np.ndarray, temperature: float = 1.0, bias: float = 0.0) -> np.ndarray:
    """Calibrated probability of fake, ``(n,)``, from ``(n, 2)`` logits."""
    z = np.asarray(logits, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-((z[:, 1] - z[:, 0]) / temperature + bias)))


def calibrated_p_fake(logits: np.ndarray, meta: dict) -> np.ndarray:
    """``p_fake`` with the calibration recorded in a checkpoint's metadata."""
    return p_fake(logits, float(meta["temperature"]), float(meta.get("bias", 0.0)))


def expected_cost(p: np.ndarray, labels: np.ndarray, threshold: float, costs: Costs) -> float:
    """Mean cost per decision of calling ``p >= threshold`` fake, on known ``labels``."""
    labels = np.asarray(labels)
    called_fake = np.asarray(p) >= threshold
    missed = (~called_fake & (labels == 1)).sum()
    false_alarms = (called_fake & (labels == 0)).sum()
    return float((missed * costs.missed_fake + false_alarms * costs.false_alarm) / max(1, len(labels)))

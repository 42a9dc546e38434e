"""The cost-sensitive decision: calibrated probabilities and the threshold that minimises expected cost.

The paper weighted its loss by class frequency but still decided by argmax, so the costs of its
errors never reached the decision. Here the user states what a missed fake and a false alarm
cost; temperature scaling (Guo et al., ICML 2017), fitted on the validation split, makes
``p_fake`` a probability one can act on; and the decision is the one with the lower expected
cost: call a face fake when ``p_fake * cost_miss > (1 - p_fake) * cost_false_alarm``.
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
        if self.missed_fake <= 0 or self.false_alarm <= 0:
            raise UnmaskError(f"Costs must be positive; got missed fake {self.missed_fake}, false alarm {self.false_alarm}")

    @property
    def threshold(self) -> float:
        """The Bayes threshold on a calibrated ``p_fake``: ``c_fa / (c_fa + c_miss)``."""
        return self.false_alarm / (self.false_alarm + self.missed_fake)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, max_iter: int = 200) -> float:
    """The temperature ``T > 0`` minimising the log-loss of ``softmax(logits / T)`` on ``labels``.

    Args:
        logits: ``(n, 2)`` validation logits.
        labels: ``(n,)`` validation labels.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # T = exp(log_t) stays positive
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp().clamp(1e-2, 1e2))


def p_fake(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probability of fake, ``(n,)``, from ``(n, 2)`` logits."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    return 1.0 / (1.0 + np.exp(z[:, 0] - z[:, 1]))


def expected_cost(p: np.ndarray, labels: np.ndarray, threshold: float, costs: Costs) -> float:
    """Mean cost per decision of calling ``p >= threshold`` fake, on known ``labels``."""
    labels = np.asarray(labels)
    called_fake = np.asarray(p) >= threshold
    missed = (~called_fake & (labels == 1)).sum()
    false_alarms = (called_fake & (labels == 0)).sum()
    return float((missed * costs.missed_fake + false_alarms * costs.false_alarm) / max(1, len(labels)))

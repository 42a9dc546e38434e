"""Metrics of a binary fake (1) / real (0) detector from scores."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score


def basic_metrics(labels, p_fake, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, ROC-AUC and F1 (fake as positive) of calling ``p_fake >= threshold`` fake.

    AUC is NaN when ``labels`` hold one class only.
    """
    labels, p_fake = np.asarray(labels), np.asarray(p_fake)
    predicted = (p_fake >= threshold).astype(int)
    auc = roc_auc_score(labels, p_fake) if len(np.unique(labels)) == 2 else float("nan")
    return {
        "acc": float(accuracy_score(labels, predicted)),
        "auc": float(auc),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
    }

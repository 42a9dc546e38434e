"""Metrics of a binary fake (1) / real (0) detector, as the field reports them.

Threshold metrics (accuracy, precision, recall, F1 per class, macro and weighted as in the
paper's tables, confusion matrix) come from scikit-learn's classification report; score metrics
(ROC-AUC, average precision, EER, log-loss, Brier score) need both classes and are ``nan``
otherwise (``null`` in JSON).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    roc_auc_score,
    roc_curve,
)

from unmask.models.inference import CLASS_NAMES


def basic_metrics(labels, p_fake, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, ROC-AUC and F1 (fake as positive) of calling ``p_fake >= threshold`` fake."""
    labels, p_fake = np.asarray(labels), np.asarray(p_fake)
    predicted = (p_fake >= threshold).astype(int)
    auc = roc_auc_score(labels, p_fake) if len(np.unique(labels)) == 2 else float("nan")
    return {
        "acc": float(accuracy_score(labels, predicted)),
        "auc": float(auc),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
    }


def threshold_metrics(labels, p_fake, threshold: float) -> dict:
    """Classification report and confusion matrix of calling ``p_fake >= threshold`` fake.

    Returns:
        ``{"threshold", "accuracy", "real": {...}, "fake": {...}, "macro": {...}, "weighted": {...},
        "confusion_matrix"}``; each class entry holds precision, recall, f1 and support; the
        confusion matrix has true classes as rows and predictions as columns, real first.
    """
    labels = np.asarray(labels, dtype=int)
    predicted = (np.asarray(p_fake) >= threshold).astype(int)
    report = classification_report(labels, predicted, labels=[0, 1], target_names=list(CLASS_NAMES),
                                   output_dict=True, zero_division=0)
    out = {"threshold": float(threshold), "accuracy": float(accuracy_score(labels, predicted))}
    for key, name in (("real", "real"), ("fake", "fake"), ("macro avg", "macro"), ("weighted avg", "weighted")):
        out[name] = {k.replace("-score", ""): float(v) for k, v in report[key].items()}
    out["confusion_matrix"] = confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    return out


def equal_error_rate(labels, p_fake) -> float:
    """The error rate where false alarms and misses are equally frequent (at the nearest ROC point)."""
    fpr, tpr, _ = roc_curve(labels, p_fake)
    fnr = 1 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def score_metrics(labels, p_fake) -> dict[str, float]:
    """ROC-AUC, average precision, EER, log-loss and Brier score of the scores ``p_fake``."""
    labels, p_fake = np.asarray(labels, dtype=int), np.asarray(p_fake, dtype=float)
    if len(np.unique(labels)) < 2:
        nan = float("nan")
        return {"auc": nan, "ap": nan, "eer": nan, "log_loss": nan, "brier": float(brier_score_loss(labels, p_fake, pos_label=1))}
    return {
        "auc": float(roc_auc_score(labels, p_fake)),
        "ap": float(average_precision_score(labels, p_fake)),
        "eer": equal_error_rate(labels, p_fake),
        "log_loss": float(log_loss(labels, np.clip(p_fake, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(labels, p_fake)),
    }


def bootstrap_ci(labels, p_fake, groups, threshold: float, *, n: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """95% intervals of AUC and accuracy, resampling whole ``groups`` (videos) with replacement.

    Frames of one video are not independent; resampling videos keeps that in the interval.
    """
    labels, p_fake, groups = np.asarray(labels), np.asarray(p_fake), np.asarray(groups)
    keys, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(keys))]
    rng = np.random.default_rng(seed)
    aucs, accs = [], []
    for _ in range(n):
        rows = np.concatenate([members[k] for k in rng.integers(0, len(keys), len(keys))])
        y, p = labels[rows], p_fake[rows]
        accs.append(np.mean((p >= threshold) == y))
        if len(np.unique(y)) == 2:
            aucs.append(roc_auc_score(y, p))

    def interval(values):
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if values else [float("nan")] * 2

    return {"auc": interval(aucs), "accuracy": interval(accs)}

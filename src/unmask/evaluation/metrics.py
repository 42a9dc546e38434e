"""Metrics of a binary fake (1) / real (0) detector, as the field reports them.

Threshold metrics (accuracy, precision, recall, F1 per class, macro and weighted as in the
paper's tables, confusion matrix) come from scikit-learn's classification report; score metrics
(ROC-AUC, average precision, EER, log-loss, Brier score) need both classes and are ``nan``
otherwise (``null`` in JSON).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
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

from unmask.decision.record import CLASS_NAMES


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
    report = classification_report(
        labels, predicted, labels=[0, 1], target_names=list(CLASS_NAMES), output_dict=True, zero_division=0
    )
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
        return {
            "auc": nan,
            "ap": nan,
            "eer": nan,
            "log_loss": nan,
            "brier": float(brier_score_loss(labels, p_fake, pos_label=1)),
        }
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


def reliability(labels, p_fake, *, n_bins: int = 10) -> dict:
    """Reliability diagram and expected calibration error (ECE) of ``p_fake`` as P(fake).

    Equal-width bins over [0, 1]; in each, the mean ``p_fake`` against the share that is truly
    fake. ECE is the bins' mean gap weighted by their counts (Naeini et al., 2015; Guo et al.,
    2017): 0 for a perfectly calibrated score.

    Returns:
        ``{"ece", "n", "bins": [{"low", "high", "n", "mean_p_fake", "share_fake"}, ...]}``; empty
        bins are left out.
    """
    labels, p = np.asarray(labels, dtype=float), np.clip(np.asarray(p_fake, dtype=float), 0, 1)
    which = np.minimum((p * n_bins).astype(int), n_bins - 1)  # p = 1 goes into the last bin
    bins, ece = [], 0.0
    for b in range(n_bins):
        inside = which == b
        if not inside.any():
            continue
        mean_p, share = float(p[inside].mean()), float(labels[inside].mean())
        ece += inside.sum() / max(len(p), 1) * abs(mean_p - share)
        bins.append(
            {
                "low": b / n_bins,
                "high": (b + 1) / n_bins,
                "n": int(inside.sum()),
                "mean_p_fake": mean_p,
                "share_fake": share,
            }
        )
    return {"ece": float(ece) if len(p) else float("nan"), "n": int(len(p)), "bins": bins}


PAIRING = (
    "each manipulation method's fake videos with all real videos of the same source dataset "
    "(real videos are shared by every method, as FaceForensics++ papers and DeepfakeBench report)"
)


def subset_metrics(labels, p_fake, threshold: float) -> dict:
    """AUC, accuracy and recall of fakes (``None`` where undefined) at ``p_fake >= threshold``."""
    labels, p = np.asarray(labels, dtype=int), np.asarray(p_fake, dtype=float)
    called = p >= threshold
    fakes = labels == 1
    return {
        "n": int(len(labels)),
        "auc": float(roc_auc_score(labels, p)) if len(np.unique(labels)) == 2 else None,
        "accuracy": float(np.mean(called == fakes)) if len(labels) else None,
        "recall": float(called[fakes].mean()) if fakes.any() else None,
    }


def per_method_metrics(frames, videos, threshold: float) -> dict:
    """Metrics per source dataset and manipulation method, at the decision ``threshold``.

    Real videos are shared by all methods, so each method's fakes are paired with every real
    video of their dataset (:data:`PAIRING`): a method's AUC says how well its fakes are told
    from real footage, its recall how many of them are caught. Each real source (``original``,
    ``Celeb-real``, ``YouTube-real`` ...) gets a row too, whose accuracy is the share of its
    videos called real. A dataset with several methods gets an ``all`` row (every fake and real).

    Args:
        frames, videos: scored crops and videos with ``dataset``, ``method``, ``label``, ``p_fake``.

    Returns:
        ``{"pairing", "threshold", "rows": [{"dataset", "method", "label", "videos_fake",
        "videos_real", "video": {...}, "frame": {...}}, ...]}``, each level as :func:`subset_metrics`.
    """
    rows = []
    # a CSV listing may leave the method empty: such videos form a group of their own, never an error
    frames, videos = (
        df.assign(method=df["method"].fillna("(none)").astype(str), dataset=df["dataset"].astype(str))
        for df in (frames, videos)
    )
    for dataset in sorted(videos["dataset"].unique()):
        v = videos[videos["dataset"] == dataset]
        f = frames[frames["dataset"] == dataset]
        real_v, real_f = v[v["label"] == 0], f[f["label"] == 0]
        fake_methods = sorted(v.loc[v["label"] == 1, "method"].unique())
        groups = [
            (m, 1, v[(v["label"] == 1) & (v["method"] == m)], f[(f["label"] == 1) & (f["method"] == m)])
            for m in fake_methods
        ]
        if len(fake_methods) > 1:
            groups.append(("all", 1, v[v["label"] == 1], f[f["label"] == 1]))
        for method, label, fake_v, fake_f in groups:
            both_v, both_f = pd.concat([fake_v, real_v]), pd.concat([fake_f, real_f])
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "label": "fake",
                    "videos_fake": len(fake_v),
                    "videos_real": len(real_v),
                    "video": subset_metrics(both_v["label"], both_v["p_fake"], threshold),
                    "frame": subset_metrics(both_f["label"], both_f["p_fake"], threshold),
                }
            )
        for method in sorted(real_v["method"].unique()):
            mine_v, mine_f = real_v[real_v["method"] == method], real_f[real_f["method"] == method]
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "label": "real",
                    "videos_fake": 0,
                    "videos_real": len(mine_v),
                    "video": subset_metrics(mine_v["label"], mine_v["p_fake"], threshold),
                    "frame": subset_metrics(mine_f["label"], mine_f["p_fake"], threshold),
                }
            )
    return {"pairing": PAIRING, "threshold": float(threshold), "rows": rows}

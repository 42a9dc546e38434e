import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    classification_report,
    confusion_matrix,
    log_loss,
    roc_auc_score,
)

from unmask.evaluation.metrics import bootstrap_ci, equal_error_rate, score_metrics, threshold_metrics

LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
SCORES = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.9, 0.2, 0.65, 0.55, 0.95])


def test_threshold_metrics_match_scikit_learn():
    m = threshold_metrics(LABELS, SCORES, 0.5)
    predicted = (SCORES >= 0.5).astype(int)
    report = classification_report(LABELS, predicted, output_dict=True)
    assert m["accuracy"] == pytest.approx(accuracy_score(LABELS, predicted)) == pytest.approx(0.8)
    for ours, theirs in (("real", "0"), ("fake", "1"), ("macro", "macro avg"), ("weighted", "weighted avg")):
        assert m[ours]["precision"] == pytest.approx(report[theirs]["precision"])
        assert m[ours]["recall"] == pytest.approx(report[theirs]["recall"])
        assert m[ours]["f1"] == pytest.approx(report[theirs]["f1-score"])
    assert m["confusion_matrix"] == confusion_matrix(LABELS, predicted).tolist() == [[3, 1], [1, 5]]
    assert threshold_metrics(LABELS, SCORES, 0.9)["confusion_matrix"] == [[4, 0], [4, 2]]  # 0.9 and 0.95


def test_score_metrics_match_scikit_learn():
    m = score_metrics(LABELS, SCORES)
    assert m["auc"] == pytest.approx(roc_auc_score(LABELS, SCORES))
    assert m["ap"] == pytest.approx(average_precision_score(LABELS, SCORES))
    assert m["log_loss"] == pytest.approx(log_loss(LABELS, SCORES))
    assert m["brier"] == pytest.approx(brier_score_loss(LABELS, SCORES))
    assert 0 < m["eer"] < 0.5


def test_equal_error_rate_of_known_cases():
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert equal_error_rate([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 1.0
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000)
    assert equal_error_rate(labels, rng.random(4000)) == pytest.approx(0.5, abs=0.03)


def test_one_class_gives_undefined_scores_not_an_error():
    m = score_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert np.isnan(m["auc"]) and np.isnan(m["eer"]) and m["brier"] == pytest.approx(np.mean([0.64, 0.09, 0.01]))


def test_bootstrap_interval_is_as_wide_as_the_number_of_videos_not_of_frames():
    # 10 videos of 50 frames: 7 judged right on every frame, 3 wrong on every frame. The frames of a
    # video are one piece of evidence: the accuracy's interval is that of 7 of 10 (about 0.4 to 1),
    # not that of 350 of 500 frames (about 0.66 to 0.74).
    import numpy as np

    labels = np.repeat([1, 0] * 5, 50)
    right = np.repeat([True] * 7 + [False] * 3, 50)
    scores = np.where(right, labels, 1 - labels).astype(float)
    groups = np.repeat(np.arange(10), 50)
    ci = bootstrap_ci(labels, scores, groups, 0.5, n=500, seed=0)
    assert ci["accuracy"][0] <= 0.5 and ci["accuracy"][1] >= 0.9, ci


def test_bootstrap_interval_resamples_videos_and_holds_the_estimate():
    groups = np.repeat(np.arange(5), 2)
    ci = bootstrap_ci(LABELS, SCORES, groups, 0.5, n=300, seed=1)
    assert ci["accuracy"][0] <= 0.8 <= ci["accuracy"][1]
    assert ci == bootstrap_ci(LABELS, SCORES, groups, 0.5, n=300, seed=1)
    assert ci["auc"][0] <= roc_auc_score(LABELS, SCORES) <= ci["auc"][1]

"""The cost-sensitive decision: calibrated probabilities and the threshold that minimises expected cost.

The paper weighted its loss by class frequency but still decided by argmax, so the costs of its
errors never reached the decision. Here the user states what a missed fake and a false alarm
cost; Platt scaling fitted on the validation split makes ``p_fake`` a probability one can act on;
and the decision is the one with the lower expected cost: call fake when
``p_fake * cost_miss > (1 - p_fake) * cost_false_alarm``, i.e. ``p_fake >= c_fa / (c_fa + c_miss)``.

Frames: ``p_fake = sigmoid(m / T + b)`` on the model's log-odds margin ``m = z_fake - z_real``.
A temperature alone cannot remove the constant shift class weights put on the log-odds
(``log N_real / N_fake`` with balanced weights), hence the bias. The fit is scikit-learn's sigmoid
calibration (Platt 2000), whose smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` keep
both parameters finite when the validation scores separate the classes (an unsmoothed fit then
drives ``T -> 0`` and ``|b| -> inf``). Nothing is clipped.

Videos: a mean of frame probabilities is not a probability of the video being fake (frames of one
video are not independent evidence). The aggregated score is calibrated once more, on the
validation videos: ``p_video = sigmoid(a * logit(s) + c)`` for each aggregation rule. With fewer
than :data:`MIN_VIDEOS_PER_CLASS` validation videos of a class no such fit is made: the aggregated
frame probability is used and the checkpoint says so.

The calibration carries the validation set's base rate ``pi_val`` (FF++ is ~80% fake). A user who
expects another rate ``pi`` in deployment shifts the log-odds (Bayes' rule with new priors):
``logit(p') = logit(p) + logit(pi) - logit(pi_val)``.

Choosing the checkpoint and calibrating on one validation split: the selection metric (AUC by
default) looks only at the ranking, which calibration does not change, but the chosen epoch is the
one whose validation scores happen to separate best, which pushes the fit towards the separable
case. Platt's smoothed targets are the guard (they act as a prior of one extra example of each
class), and the fit's health (counts, separable or not, any bound reached) is written to the
checkpoint and every evaluation so that a fit resting on too little data is visible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from unmask.errors import SettingError, UnmaskError
from unmask.settings import named_settings

if TYPE_CHECKING:  # record.py builds on Costs, so the record is only a type here
    from unmask.decision.record import CheckpointRecord

logger = logging.getLogger(__name__)

MIN_VIDEOS_PER_CLASS = 5  # below this, a video-level fit rests on too little data to make
MIN_TRUSTED = 30  # per class; fewer validation examples than this and the fit is marked untrusted
MAX_SLOPE = 1e3  # |1/T| beyond this is a numerical runaway, never a calibration


@named_settings("cost")
@dataclass(frozen=True)
class Costs:
    """What each kind of error costs, in any unit (only the ratio matters)."""

    missed_fake: float = 1.0
    false_alarm: float = 1.0

    def __post_init__(self):
        if not (0 < self.missed_fake < float("inf") and 0 < self.false_alarm < float("inf")):  # nan too
            raise UnmaskError(
                f"Costs must be positive; got missed fake {self.missed_fake}, false alarm {self.false_alarm}"
            )

    @property
    def threshold(self) -> float:
        """The Bayes threshold on a calibrated ``p_fake``: ``c_fa / (c_fa + c_miss)``."""
        return self.false_alarm / (self.false_alarm + self.missed_fake)


def logit(p) -> np.ndarray:
    """Log-odds of ``p``, kept finite (``p`` clipped to [1e-12, 1 - 1e-12])."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def sigmoid(x) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow warnings."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def margin(logits) -> np.ndarray:
    """The model's fake log-odds ``z_fake - z_real``, ``(n,)`` from ``(n, 2)`` logits."""
    z = np.asarray(logits, dtype=np.float64)
    return z[:, 1] - z[:, 0]


def fit_platt(scores, labels) -> dict:
    """``{"slope", "intercept", "health"}`` of ``p = sigmoid(slope * score + intercept)``.

    scikit-learn's sigmoid calibration on the scores as a frozen decision function; the health
    records the counts, whether the scores separate the classes (the case an unsmoothed fit
    cannot handle) and whether the slope ran to :data:`MAX_SLOPE` (then both parameters are
    scaled together, which keeps the decision boundary where the fit put it).
    """
    x, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=int)
    n_fake, n_real = int((y == 1).sum()), int((y == 0).sum())
    health = {"n": int(len(y)), "n_fake": n_fake, "n_real": n_real}
    if n_fake == 0 or n_real == 0:
        health.update(
            separable=None,
            at_bound=False,
            trusted=False,
            note="one class only: nothing to calibrate against; identity used",
        )
        return {"slope": 1.0, "intercept": 0.0, "health": health}
    slope, intercept = _sigmoid_fit(x, y)
    inverted = slope <= 0
    if inverted:
        # A calibration maps scores to probabilities without re-ranking them. A fit that turns the
        # ranking round has learned the validation split's noise (often a handful of videos), not
        # the model, and would turn every later ranking round with it (an AUC of 0.61 read as
        # 0.39): keep the model's ranking (slope 1) and fit the intercept alone.
        slope, intercept = 1.0, _fit_intercept(x, y)
    at_bound = abs(slope) > MAX_SLOPE
    if at_bound:
        scale = MAX_SLOPE / abs(slope)
        slope, intercept = slope * scale, intercept * scale
    separable = bool(x[y == 1].min() > x[y == 0].max() or x[y == 1].max() < x[y == 0].min())
    trusted = min(n_fake, n_real) >= MIN_TRUSTED and not inverted and not at_bound
    notes = []
    if min(n_fake, n_real) < MIN_TRUSTED:
        notes.append(f"fewer than {MIN_TRUSTED} examples of a class")
    if separable:
        notes.append("scores separate the classes (smoothed targets bound the fit)")
    if inverted:
        notes.append("scores rank the classes the wrong way: slope kept at 1, intercept fitted")
    if at_bound:
        notes.append(f"slope reached {MAX_SLOPE:g}")
    health.update(
        separable=separable, at_bound=at_bound, inverted=inverted, trusted=bool(trusted), note="; ".join(notes) or "ok"
    )
    return {"slope": slope, "intercept": intercept, "health": health}


def _sigmoid_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(slope, intercept)`` of scikit-learn's sigmoid calibration of ``x`` as a frozen decision function."""
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    class _Scores(ClassifierMixin, BaseEstimator):  # the scores are already the decision function
        def fit(self, x, y):
            self.classes_ = np.array([0, 1])
            return self

        def decision_function(self, x):
            return np.asarray(x)[:, 0]

        def predict(self, x):
            return (self.decision_function(x) > 0).astype(int)

    # A frozen estimator is never refitted; one "fold" holding every row fits the sigmoid on all
    # of them (the default 5 folds would refuse a class with fewer than 5 examples).
    everything = np.arange(len(y))
    calibrated = CalibratedClassifierCV(
        FrozenEstimator(_Scores().fit(x[:, None], y)), method="sigmoid", cv=[(everything, everything)]
    ).fit(x[:, None], y)
    sig = calibrated.calibrated_classifiers_[0].calibrators[0]  # sklearn: p = 1 / (1 + exp(a f + b))
    return -float(sig.a_), -float(sig.b_)


def _fit_intercept(scores: np.ndarray, labels: np.ndarray) -> float:
    """The intercept ``b`` of ``sigmoid(score + b)`` of least log-loss against Platt's smoothed targets."""
    from scipy.optimize import minimize_scalar

    n_fake, n_real = int((labels == 1).sum()), int((labels == 0).sum())
    target = np.where(labels == 1, (n_fake + 1) / (n_fake + 2), 1 / (n_real + 2))

    def loss(b):
        z = scores + b
        return float(np.sum(np.logaddexp(0.0, z) - target * z))  # binary cross-entropy of sigmoid(z)

    return float(minimize_scalar(loss, bounds=(-50.0, 50.0), method="bounded").x)


def fit_calibration(logits, labels, video_ids=None) -> dict:
    """Frame calibration ``{"temperature", "bias", "prior_fake", "health"}`` from validation logits.

    Args:
        logits: ``(n, 2)`` validation logits.
        labels: ``(n,)`` validation labels.
        video_ids: ``(n,)`` video of each crop, to count videos in the health record.
    """
    labels = np.asarray(labels, dtype=int)
    fit = fit_platt(margin(logits), labels)
    health = fit["health"]
    if video_ids is not None:
        videos = {v: l for v, l in zip(np.asarray(video_ids), labels)}
        health["videos_fake"] = sum(1 for l in videos.values() if l == 1)
        health["videos_real"] = sum(1 for l in videos.values() if l == 0)
    return {
        "temperature": 1.0 / fit["slope"] if fit["slope"] != 0 else float("inf"),
        "bias": fit["intercept"],
        "prior_fake": float(labels.mean()) if len(labels) else 0.5,
        "health": health,
    }


def p_fake(logits, temperature: float = 1.0, bias: float = 0.0) -> np.ndarray:
    """``sigmoid(margin / T + b)``, ``(n,)`` from ``(n, 2)`` logits; with the defaults, the model's softmax."""
    return sigmoid(margin(logits) / temperature + bias)


def shift_prior(p, prior_from: float, prior_to: float | None) -> np.ndarray:
    """``p`` fitted where the fake rate was ``prior_from``, for a deployment rate ``prior_to``.

    ``logit(p') = logit(p) + logit(prior_to) - logit(prior_from)``; ``None`` leaves ``p`` as is.
    """
    p = np.asarray(p, dtype=np.float64)
    if prior_to is None:
        return p
    check_prior(prior_to)
    return sigmoid(logit(p) + logit(prior_to) - logit(prior_from))


def check_prior(prior_fake: float | None) -> None:
    """Refuse a deployment prior outside (0, 1)."""
    if prior_fake is not None and not 0 < prior_fake < 1:
        raise SettingError(
            f"prior_fake must lie strictly between 0 and 1 (a share of fakes), not {prior_fake}", "prior_fake"
        )


def calibrated_p_fake(logits, record: CheckpointRecord, *, prior_fake: float | None = None) -> np.ndarray:
    """Frame ``p_fake`` with the calibration of a checkpoint's record (and a deployment prior)."""
    p = p_fake(logits, record.temperature, record.bias)
    return shift_prior(p, record.frame_prior, prior_fake)


def fit_video_calibration(frames, frame_prior: float) -> dict:
    """One video calibration per aggregation rule, fitted on validation videos.

    Args:
        frames: validation crops with ``video_id``, ``label``, ``frame_index``, ``track_id`` and their
            calibrated frame ``p_fake``.
        frame_prior: the frame calibration's fake rate (the fallback's prior).

    Returns:
        ``{rule: {"slope", "intercept", "prior_fake", "health"} or {"identity": True, ...}}``.
    """
    from unmask.decision.aggregate import AGGREGATIONS, aggregate_videos

    out = {}
    for rule in AGGREGATIONS:
        videos = aggregate_videos(frames, rule)
        y = videos["label"].to_numpy(dtype=int)
        n_fake, n_real = int((y == 1).sum()), int((y == 0).sum())
        if min(n_fake, n_real) < MIN_VIDEOS_PER_CLASS:
            out[rule] = {
                "identity": True,
                "prior_fake": frame_prior,
                "health": {
                    "n": len(y),
                    "n_fake": n_fake,
                    "n_real": n_real,
                    "trusted": False,
                    "note": f"fewer than {MIN_VIDEOS_PER_CLASS} validation videos of a class: the video p_fake is "
                    "the aggregated frame p_fake, not calibrated at video level",
                },
            }
            continue
        fit = fit_platt(logit(videos["p_fake"]), y)
        out[rule] = {**fit, "identity": False, "prior_fake": float(y.mean())}
    return out


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """Log ``message`` once per process: a Detector judging a folder would repeat it per video."""
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


def calibrate_video_scores(
    scores, record: CheckpointRecord, aggregation: str = "mean", *, prior_fake: float | None = None
) -> np.ndarray:
    """Video ``p_fake`` from aggregated (uncalibrated-at-video-level) frame scores.

    Old checkpoints without a video calibration use the aggregated score as it is (logged once).
    """
    scores = np.asarray(scores, dtype=np.float64)
    video = record.video_calibration.get(aggregation)
    if video is None:
        _warn_once(
            "this checkpoint has no video-level calibration (trained before unmask recorded one): the "
            "video p_fake is the aggregated frame p_fake; train again to calibrate it"
        )
        return shift_prior(scores, record.frame_prior, prior_fake)
    if video.get("identity"):
        return shift_prior(scores, float(video["prior_fake"]), prior_fake)
    p = sigmoid(float(video["slope"]) * logit(scores) + float(video["intercept"]))
    return shift_prior(p, float(video["prior_fake"]), prior_fake)


def video_p_fake(
    frame_p_fake,
    record: CheckpointRecord,
    *,
    aggregation: str = "mean",
    frame_index=None,
    track_id=None,
    prior_fake: float | None = None,
) -> float:
    """The calibrated probability that one video (or face track) is fake.

    The one video-level decision rule: ``evaluate`` and the Detector call it.

    Args:
        frame_p_fake: ``(n,)`` calibrated frame ``p_fake`` of the video's crops (no prior shift:
            :func:`calibrated_p_fake` without ``prior_fake``).
        record: the checkpoint's record.
        aggregation: the rule that makes one score of the frames (:mod:`unmask.decision.aggregate`).
        frame_index, track_id: ``(n,)``, for the ``track`` rule.
        prior_fake: the share of fakes expected in deployment; None keeps the validation set's.

    Returns:
        ``p_fake`` of the video; compare it with :func:`decision_threshold`.
    """
    from unmask.decision.aggregate import aggregate_scores

    score = aggregate_scores(frame_p_fake, frame_index=frame_index, track_id=track_id, method=aggregation)
    return float(calibrate_video_scores([score], record, aggregation, prior_fake=prior_fake)[0])


def decision_threshold(record: CheckpointRecord) -> float:
    """The cost-based threshold on a calibrated ``p_fake`` recorded in a checkpoint."""
    return record.threshold


def expected_cost(p: np.ndarray, labels: np.ndarray, threshold: float, costs: Costs) -> float:
    """Mean cost per decision of calling ``p >= threshold`` fake, on known ``labels``."""
    labels = np.asarray(labels)
    called_fake = np.asarray(p) >= threshold
    missed = (~called_fake & (labels == 1)).sum()
    false_alarms = (called_fake & (labels == 0)).sum()
    return float((missed * costs.missed_fake + false_alarms * costs.false_alarm) / max(1, len(labels)))

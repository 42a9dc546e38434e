import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch.nn import functional as F

from unmask.errors import ManifestError, UnknownNameError, UnmaskError
from unmask.decision.calibration import (
    Costs,
    calibrate_video_scores,
    calibrated_p_fake,
    decision_threshold,
    expected_cost,
    fit_calibration,
    fit_video_calibration,
    logit,
    p_fake,
    shift_prior,
    video_p_fake,
)
from unmask.training.cost import FocalLoss, compute_class_weights, create_loss


def test_balanced_weights_are_sklearns_and_the_papers():
    labels = np.array([1] * 11106 + [0] * 2942)  # Celeb-DF frame counts in the paper
    weights = compute_class_weights(labels, "balanced")
    np.testing.assert_allclose(weights, compute_class_weight("balanced", classes=np.array([0, 1]), y=labels))
    assert np.round(weights, 2).tolist() == [2.39, 0.63]


def test_effective_number_weights_favour_the_rare_class_and_sum_to_two():
    weights = compute_class_weights([0] * 100 + [1] * 1000, "effective", beta=0.999)
    assert weights[0] > weights[1] and weights.sum() == pytest.approx(2.0)
    beta, n = 0.999, np.array([100, 1000])
    expected = (1 - beta) / (1 - beta**n)
    np.testing.assert_allclose(weights, expected / expected.sum() * 2)
    assert compute_class_weights([0, 1, 1], "none").tolist() == [1.0, 1.0]


def test_default_effective_beta_weights_by_class_share_at_any_scale():
    for n in (50, 5_000, 500_000):  # crops: a fixed beta of 0.999 gives ~1:1 at thousands
        weights = compute_class_weights([0] * n + [1] * (4 * n), "effective")
        ratio = weights[0] / weights[1]
        assert 2.8 < ratio < 3.2, (n, ratio)  # between none (1) and balanced (4), whatever n
    old = compute_class_weights([0] * 5000 + [1] * 20000, "effective", beta=0.999)
    assert old[0] / old[1] < 1.01  # what the fixed beta did: no weighting at all
    with pytest.raises(UnmaskError, match="^beta must lie in"):
        compute_class_weights([0, 1], "effective", beta=1.0)


def test_one_class_training_split_is_refused():
    with pytest.raises(ManifestError, match="no real crops"):
        compute_class_weights([1, 1, 1])
    with pytest.raises(UnknownNameError, match="Unknown class weighting 'balance'"):
        compute_class_weights([0, 1], "balance")


def test_focal_loss_with_gamma_zero_is_weighted_cross_entropy_and_down_weights_easy_examples():
    torch.manual_seed(0)
    logits, target = torch.randn(64, 2), torch.randint(0, 2, (64,))
    weight = torch.tensor([2.0, 0.5])
    assert FocalLoss(weight, gamma=0.0)(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target, weight=weight).item(), rel=1e-5
    )
    easy = torch.tensor([[-4.0, 4.0]])
    assert FocalLoss(gamma=2.0)(easy, torch.tensor([1])) < F.cross_entropy(easy, torch.tensor([1])) / 100
    assert isinstance(create_loss("ce", weight), torch.nn.CrossEntropyLoss)
    with pytest.raises(UnknownNameError):
        create_loss("hinge", None)


def test_calibration_recovers_an_overconfident_and_shifted_models_temperature_and_bias():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 5000)
    labels = (rng.random(5000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    # 3x too sharp and shifted by -1.3, as balanced class weights shift a 4:1 fake-heavy set
    distorted = np.stack([np.zeros(5000), (true_logit + 1.3) * 3 - 0], axis=1)
    distorted[:, 1] -= 3 * 2 * 1.3
    fit = fit_calibration(distorted, labels)
    temperature, bias = fit["temperature"], fit["bias"]
    assert temperature == pytest.approx(3.0, rel=0.1) and bias == pytest.approx(1.3, abs=0.15)
    assert fit["health"]["trusted"] and not fit["health"]["separable"] and fit["prior_fake"] == labels.mean()

    def nll(t, b):
        p = p_fake(distorted, t, b)
        return -np.mean(np.log(np.where(labels == 1, p, 1 - p)))

    assert nll(temperature, bias) < nll(temperature, 0.0) < nll(1.0, 0.0)


def test_threshold_minimises_expected_cost_on_calibrated_probabilities():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    labels = (rng.random(20000) < p).astype(int)  # p is calibrated by construction
    costs = Costs(missed_fake=4.0, false_alarm=1.0)
    assert costs.threshold == pytest.approx(0.2)
    grid = np.linspace(0.01, 0.99, 99)
    best = grid[np.argmin([expected_cost(p, labels, t, costs) for t in grid])]
    assert abs(best - costs.threshold) < 0.05
    assert expected_cost(p, labels, costs.threshold, costs) < expected_cost(p, labels, 0.5, costs)
    with pytest.raises(UnmaskError, match="Costs must be positive"):
        Costs(0, 1)


def _margins_to_logits(margin):
    return np.stack([np.zeros(len(margin)), margin], axis=1)


def test_calibration_of_separable_scores_stays_sane_and_says_it_rests_on_little_data():
    # What a checkpoint chosen on its validation split gives those crops: the classes do not
    # overlap there (an unsmoothed fit then sharpens without bound: T -> 0), but on test crops they do.
    rng = np.random.default_rng(0)
    val_labels = np.r_[np.zeros(20), np.ones(20)].astype(int)
    val_margin = np.where(val_labels == 1, rng.uniform(1, 5, 40), rng.uniform(-4, 0, 40))
    fit = fit_calibration(_margins_to_logits(val_margin), val_labels, video_ids=np.repeat(np.arange(4), 10))
    assert 0.3 < fit["temperature"] < 3 and abs(fit["bias"]) < 2
    assert fit["health"]["separable"] and not fit["health"]["trusted"] and not fit["health"]["at_bound"]
    assert fit["health"]["videos_fake"] == 2 and fit["health"]["videos_real"] == 2
    test_labels = np.r_[np.zeros(500), np.ones(500)].astype(int)
    test_logits = _margins_to_logits(np.where(test_labels == 1, 3.0, -2.0) + rng.normal(0, 1.5, 1000))
    p = calibrated_p_fake(test_logits, _record(temperature=fit["temperature"], bias=fit["bias"]))
    log_loss = -np.mean(np.log(np.where(test_labels == 1, p, 1 - p)))
    assert log_loss < 0.25  # the unsmoothed fit (T = 0.03) scored 0.98 here; the raw softmax 0.19


def test_calibration_never_turns_the_models_ranking_round():
    # Validation scores that rank the classes the wrong way (a handful of videos can): a free Platt fit
    # would take a negative slope and turn every later ranking round with it.
    rng = np.random.default_rng(0)
    labels = np.array([0] * 40 + [1] * 40)
    scores = np.where(labels == 1, -1.0, 1.0) + rng.normal(0, 0.5, 80)
    logits = np.stack([np.zeros(80), scores], 1)
    calibration = fit_calibration(logits, labels)
    assert calibration["temperature"] == 1.0  # slope 1: the model's own ranking
    assert calibration["health"]["inverted"] and not calibration["health"]["trusted"]
    assert "wrong way" in calibration["health"]["note"]
    grid = np.stack([np.zeros(5), np.linspace(-3, 3, 5)], 1)
    p = p_fake(grid, calibration["temperature"], calibration["bias"])
    assert np.all(np.diff(p) > 0)  # increasing in the score: AUC unchanged by calibration
    # the intercept is still fitted: half the crops are fake, the scores centred on 0
    assert abs(calibration["bias"]) < 0.5


def test_prior_shift_is_bayes_rule_on_the_log_odds():
    p = np.array([0.1, 0.5, 0.8])
    shifted = shift_prior(p, 0.8, 0.2)
    np.testing.assert_allclose(logit(shifted), logit(p) + logit(0.2) - logit(0.8))
    # exact case: a calibrated p at base rate 0.8 for likelihood ratio 1 is 0.8; at base rate 0.2 it is 0.2
    assert shift_prior([0.8], 0.8, 0.2)[0] == pytest.approx(0.2)
    np.testing.assert_array_equal(shift_prior(p, 0.8, None), p)
    with pytest.raises(UnmaskError, match="^prior_fake must lie strictly between 0 and 1"):
        shift_prior(p, 0.8, 1.0)


def _record(**meta):
    """The record of a checkpoint whose metadata holds ``meta`` (read as any checkpoint's is)."""
    from dataclasses import asdict

    from unmask.decision.record import CheckpointRecord
    from unmask.models.registry import get_spec

    return CheckpointRecord.from_metadata({"spec": asdict(get_spec("mobilenetv3_small")), "size_px": 64, **meta})


def _video_frames(rng, n_videos, frames=8):
    """Frames whose p_fake is a mean-of-frames score that overstates how sure the video is."""
    rows = []
    for v in range(n_videos):
        label = v % 2
        centre = rng.normal(0.6 if label else 0.4, 0.12)  # videos overlap: the truth is uncertain
        for f in range(frames):
            rows.append(
                {
                    "video_id": f"v{v}",
                    "label": label,
                    "method": "x",
                    "frame_index": f,
                    "track_id": 0,
                    "p_fake": float(np.clip(centre + rng.normal(0, 0.02), 0.01, 0.99)),
                }
            )
    import pandas as pd

    return pd.DataFrame(rows)


def test_video_calibration_is_fitted_on_validation_videos_and_used_by_the_one_video_rule():
    rng = np.random.default_rng(3)
    val = _video_frames(rng, 400)
    video_cal = fit_video_calibration(val, frame_prior=0.5)
    assert set(video_cal) == {"mean", "median", "confident", "track"}
    mean = video_cal["mean"]
    assert not mean["identity"] and mean["health"]["n"] == 400 and mean["prior_fake"] == 0.5
    meta = _record(
        temperature=1.0,
        bias=0.0,
        calibration={"prior_fake": 0.5},
        video_calibration=video_cal,
        costs={"missed_fake": 3.0, "false_alarm": 1.0},
        threshold=0.25,
    )
    test = _video_frames(rng, 400)
    scores = test.groupby("video_id")["p_fake"].mean()
    labels = test.groupby("video_id")["label"].first()
    calibrated = calibrate_video_scores(scores, meta, "mean")

    def nll(p):
        return -np.mean(np.log(np.where(labels == 1, p, 1 - p)))

    assert nll(calibrated) < nll(scores.to_numpy())  # the raw mean is not a probability of the video
    one = test[test["video_id"] == "v7"]
    assert video_p_fake(one["p_fake"], meta) == pytest.approx(calibrated[list(scores.index).index("v7")])
    assert video_p_fake(one["p_fake"], meta, prior_fake=0.1) < video_p_fake(one["p_fake"], meta)
    assert decision_threshold(meta) == pytest.approx(0.25)


def test_too_few_validation_videos_fall_back_to_the_aggregated_frame_score_and_old_checkpoints_load(
    caplog, monkeypatch
):
    from unmask.decision import calibration

    monkeypatch.setattr(calibration, "_WARNED", set())  # the warning is once per process
    rng = np.random.default_rng(4)
    few = fit_video_calibration(_video_frames(rng, 6), frame_prior=0.7)
    assert few["mean"]["identity"] and "fewer than" in few["mean"]["health"]["note"]
    meta = _record(temperature=1.0, calibration={"prior_fake": 0.7}, video_calibration=few)
    assert calibrate_video_scores([0.3], meta, "mean")[0] == pytest.approx(0.3)
    old = _record(temperature=2.0, bias=0.5, threshold=0.5)  # a checkpoint from before video calibration
    assert calibrate_video_scores([0.3], old, "mean")[0] == pytest.approx(0.3)
    assert "no video-level calibration" in caplog.text


def test_training_warns_when_it_enlarges_crops_smaller_than_the_input(caplog):
    from unmask.training.trainer import warn_upsampling

    with caplog.at_level("WARNING", logger="unmask.training"):
        assert warn_upsampling({"size": 64}, 128)
        assert not warn_upsampling({"size": 224}, 224) and not warn_upsampling({"size": 299}, 224)
        assert not warn_upsampling({}, 224)  # a manifest that does not record its crop size
        assert warn_upsampling({"size_px": 112}, 224)  # recorded under the old name
    assert "the crops are 64 px and the model's input 128 px: training enlarges every crop 2.00x" in caplog.text
    assert caplog.text.count("training enlarges") == 2

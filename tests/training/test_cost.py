import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch.nn import functional as F

from unmask.errors import ManifestError, UnknownNameError, UnmaskError
from unmask.training.calibration import Costs, expected_cost, fit_calibration, p_fake
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
    expected = (1 - beta) / (1 - beta ** n)
    np.testing.assert_allclose(weights, expected / expected.sum() * 2)
    assert compute_class_weights([0, 1, 1], "none").tolist() == [1.0, 1.0]


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
        F.cross_entropy(logits, target, weight=weight).item(), rel=1e-5)
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
    temperature, bias = fit_calibration(distorted, labels)
    assert temperature == pytest.approx(3.0, rel=0.1) and bias == pytest.approx(1.3, abs=0.15)

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

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss as sk_brier
from sklearn.metrics import log_loss as sk_log_loss

from psychohistory import metrics

rng = np.random.default_rng(0)
P = rng.random(500)
Y = (rng.random(500) < P).astype(int)


def test_brier_matches_sklearn():
    assert metrics.brier_score_loss(Y, P) == pytest.approx(sk_brier(Y, P))
    w = rng.random(500)
    assert metrics.brier_score_loss(Y, P, sample_weight=w) == pytest.approx(
        sk_brier(Y, P, sample_weight=w))


def test_log_loss_matches_sklearn():
    clipped = np.clip(P, 1e-6, 1 - 1e-6)
    assert metrics.log_loss(Y, P) == pytest.approx(sk_log_loss(Y, clipped))


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_matches_sklearn(strategy):
    freq, mean, _ = metrics.reliability_curve(Y, P, n_bins=8, strategy=strategy)
    sk_freq, sk_mean = calibration_curve(Y, P, n_bins=8, strategy=strategy)
    np.testing.assert_allclose(freq, sk_freq)
    np.testing.assert_allclose(mean, sk_mean)


def test_ece_by_hand():
    assert metrics.expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0
    assert metrics.expected_calibration_error([1, 1, 0, 0], [0.9, 0.9, 0.9, 0.9], n_bins=5) == \
        pytest.approx(0.4)


def test_murphy_decomposition_adds_up():
    d = metrics.brier_decomposition(Y, np.round(P, 1))
    assert d.reliability - d.resolution + d.uncertainty == pytest.approx(d.brier)
    assert d.brier == pytest.approx(metrics.brier_score_loss(Y, np.round(P, 1)))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: metrics.brier_score_loss([1, 0], [0.5]), "y_true has 2 values but y_prob has 1"),
    (lambda: metrics.brier_score_loss([1], [np.nan]), "y_prob contains NaN"),
    (lambda: metrics.brier_score_loss([1], [1.5]), r"y_prob must lie in \[0, 1\]"),
    (lambda: metrics.brier_score_loss([2], [0.5]), "y_true must contain only 0 and 1"),
    (lambda: metrics.brier_score_loss([], []), "empty"),
    (lambda: metrics.expected_calibration_error([1], [0.5], strategy="x"), "strategy must be one of"),
    (lambda: metrics.expected_calibration_error([1], [0.5], n_bins=0), "n_bins"),
    (lambda: metrics.brier_score_loss([1], [0.5], sample_weight=[-1]), "sample_weight"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_sharpness():
    assert metrics.sharpness([0.2, 0.8]) == pytest.approx(0.09)

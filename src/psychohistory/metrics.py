"""Pure numeric scoring functions: arrays in, floats or arrays out.

Names follow scikit-learn: ``*_loss`` and ``*_error`` are lower-better. Inputs are checked
first (length, finiteness, range) and a bad argument is named in the message.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "BrierDecomposition",
    "bootstrap_interval",
    "brier_decomposition",
    "brier_score_loss",
    "expected_calibration_error",
    "log_loss",
    "outcome_calibration_error",
    "reliability_curve",
    "sharpness",
]

BIN_STRATEGIES = ("uniform", "quantile")


def _check(y_true: ArrayLike, y_prob: ArrayLike,
           sample_weight: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_prob, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but y_prob has {p.size}")
    if y.size == 0:
        raise ValueError("y_true and y_prob are empty")
    if not np.all(np.isfinite(p)):
        raise ValueError("y_prob contains NaN or infinite values")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"y_prob must lie in [0, 1]; found {p[(p < 0) | (p > 1)][0]}")
    if not np.all(np.isin(y, (0.0, 1.0))):
        raise ValueError("y_true must contain only 0 and 1")
    if sample_weight is None:
        w = np.ones_like(p)
    else:
        w = np.asarray(sample_weight, dtype=float).ravel()
        if w.shape != p.shape:
            raise ValueError(f"sample_weight has {w.size} values for {p.size} predictions")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("sample_weight must be finite, non-negative and not all zero")
    return y, p, w


def brier_score_loss(y_true: ArrayLike, y_prob: ArrayLike, *,
                     sample_weight: ArrayLike | None = None) -> float:
    """Mean squared difference between the forecast probability and the outcome.

    >>> brier_score_loss([1, 0, 1], [0.9, 0.2, 0.6])
    0.07
    """
    y, p, w = _check(y_true, y_prob, sample_weight)
    return round(float(np.average((p - y) ** 2, weights=w)), 12)


def log_loss(y_true: ArrayLike, y_prob: ArrayLike, *, eps: float = 1e-6,
             sample_weight: ArrayLike | None = None) -> float:
    """Mean negative log-likelihood, with probabilities clipped to ``[eps, 1 - eps]``.

    >>> round(log_loss([1, 0], [0.5, 0.5]), 4)
    0.6931
    """
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    y, p, w = _check(y_true, y_prob, sample_weight)
    p = np.clip(p, eps, 1 - eps)
    return float(np.average(-(y * np.log(p) + (1 - y) * np.log(1 - p)), weights=w))


def _bins(p: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy not in BIN_STRATEGIES:
        raise ValueError(f"strategy must be one of {BIN_STRATEGIES}, got {strategy!r}")
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
        edges[0], edges[-1] = 0.0, 1.0
    # right-closed last bin so that p == 1 lands in it
    return np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, n_bins - 1)


def reliability_curve(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10,
                      strategy: str = "uniform") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty bin: observed frequency, mean forecast, and count.

    Matches scikit-learn's ``calibration_curve`` (which returns the first two).

    >>> freq, mean, count = reliability_curve([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.3], n_bins=2)
    >>> freq.tolist(), mean.round(2).tolist(), count.tolist()
    ([0.0, 1.0], [0.2, 0.85], [2, 2])
    """
    y, p, _ = _check(y_true, y_prob)
    ids = _bins(p, n_bins, strategy)
    count = np.bincount(ids, minlength=n_bins)
    keep = count > 0
    freq = np.bincount(ids, weights=y, minlength=n_bins)[keep] / count[keep]
    mean = np.bincount(ids, weights=p, minlength=n_bins)[keep] / count[keep]
    return freq, mean, count[keep]


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10,
                               strategy: str = "uniform") -> float:
    """Count-weighted mean gap between forecast and frequency over bins.

    ``strategy="uniform"`` uses equal-width bins, ``"quantile"`` equal-mass bins.

    >>> expected_calibration_error([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.3], n_bins=2)
    0.175
    """
    freq, mean, count = reliability_curve(y_true, y_prob, n_bins=n_bins, strategy=strategy)
    return round(float(np.sum(count * np.abs(freq - mean)) / np.sum(count)), 12)


@dataclass(frozen=True)
class BrierDecomposition:
    """Murphy (1973): brier = reliability - resolution + uncertainty (exact for binned p)."""

    reliability: float
    resolution: float
    uncertainty: float
    brier: float

    @property
    def residual(self) -> float:
        """What the binned identity misses (0 when forecasts take one value per bin)."""
        return self.brier - (self.reliability - self.resolution + self.uncertainty)


def outcome_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, *, n_outcomes: int,
                              n_bins: int = 10) -> float:
    """ECE normalised by what happened: ``sum over bins |sum(y - p)| / n_outcomes``.

    The plain ECE divides by the number of forecasts, so junk written at p = 0 (calibrated,
    and worthless) dilutes it. Dividing by the number of real outcomes instead, a forecast at
    p = 0 that did not happen changes nothing.

    >>> outcome_calibration_error([1, 0], [0.8, 0.4], n_outcomes=1, n_bins=10)
    0.6
    >>> outcome_calibration_error([1, 0, 0, 0], [0.8, 0.4, 0.0, 0.0], n_outcomes=1, n_bins=10)
    0.6
    """
    if n_outcomes < 1:
        raise ValueError(f"n_outcomes must be at least 1, got {n_outcomes}")
    y, p, _ = _check(y_true, y_prob)
    ids = _bins(p, n_bins, "uniform")
    gaps = np.bincount(ids, weights=y - p, minlength=n_bins)
    return round(float(np.abs(gaps).sum() / n_outcomes), 12)


def bootstrap_interval(values: ArrayLike, *, level: float = 0.95, n_resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (e.g. one number per case).

    >>> lo, hi = bootstrap_interval([0.1, 0.2, 0.3, 0.4, 0.5])
    >>> lo < 0.3 < hi
    True
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or not v.size:
        raise ValueError("values must be a non-empty 1-D array")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_resamples, v.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def brier_decomposition(y_true: ArrayLike, y_prob: ArrayLike) -> BrierDecomposition:
    """Murphy's decomposition, grouping forecasts by their distinct values (so it is exact).

    >>> d = brier_decomposition([1, 0, 1, 1], [0.8, 0.8, 0.4, 0.4])
    >>> round(d.reliability - d.resolution + d.uncertainty, 10) == round(d.brier, 10)
    True
    """
    y, p, _ = _check(y_true, y_prob)
    values, ids = np.unique(p, return_inverse=True)
    count = np.bincount(ids).astype(float)
    freq = np.bincount(ids, weights=y) / count
    base = y.mean()
    n = y.size
    reliability = float(np.sum(count * (values - freq) ** 2) / n)
    resolution = float(np.sum(count * (freq - base) ** 2) / n)
    uncertainty = float(base * (1 - base))
    return BrierDecomposition(reliability, resolution, uncertainty,
                              float(np.mean((p - y) ** 2)))


def sharpness(y_prob: ArrayLike) -> float:
    """Variance of the forecasts: how far they stray from their mean (0 = all the same).

    >>> sharpness([0.5, 0.5]), round(sharpness([0.0, 1.0]), 2)
    (0.0, 0.25)
    """
    p = np.asarray(y_prob, dtype=float).ravel()
    if p.size == 0:
        raise ValueError("y_prob is empty")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("y_prob must be finite and lie in [0, 1]")
    return float(np.var(p))

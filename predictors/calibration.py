"""How well a predictor's ``(mean, var)`` describe the values it later met: interval coverage,
ranking and the split-conformal factor that would make its Gaussian intervals honest.

:func:`interval_report` takes held-out predictions (each made before its value was measured) and the
measured values; the interval of a prediction is the Gaussian ``mean ± z·sqrt(var)`` with
``z = Φ⁻¹(1/2 + coverage/2)`` (1.645 for 90%). :func:`conformal_quantile` is the finite-sample
split-conformal quantile: with ``n`` exchangeable scores, the ``⌈(n+1)·coverage⌉``-th smallest one
bounds a new score with probability at least ``coverage``. Dividing the quantile of the
standardised errors ``|y − mean| / sqrt(var)`` by ``z`` gives ``scale``: the factor by which the
predicted standard deviation must be widened (> 1) or may be narrowed (< 1) so that
``mean ± scale·z·sqrt(var)`` covers at the nominal rate. Where no held-out predictions were kept,
:func:`cross_val_scores` makes them by K-fold refits (leave-one-out for few rows), for a
cross-conformal factor. numpy and scipy only.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

#: ``(n+1)·coverage`` is computed in floating point (``10 × 0.9`` may land a hair above 9): this much
#: slack keeps an exact integer product from rounding up to the next rank.
_RANK_SLACK = 1e-9


def _check_coverage(coverage) -> float:
    if (isinstance(coverage, bool) or not isinstance(coverage, (int, float, np.integer, np.floating))
            or not 0 < coverage < 1):
        raise ValueError(f"coverage must be a fraction in (0, 1), e.g. 0.9, got {coverage!r}")
    return float(coverage)


def _vector(name: str, values) -> np.ndarray:
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D array of numbers, got {type(values).__name__}") from None
    if out.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return out


def conformal_rank(n: int, coverage: float) -> int:
    """``⌈(n+1)·coverage⌉``: which order statistic of ``n`` scores is the conformal quantile."""
    return math.ceil((n + 1) * _check_coverage(coverage) - _RANK_SLACK)


def conformal_quantile(scores, coverage: float) -> float | None:
    """The ``⌈(n+1)·coverage⌉``-th smallest of the ``n`` finite ``scores``; ``None`` when that rank
    exceeds ``n`` (too few scores to bound a new one at ``coverage``, e.g. fewer than 9 at 0.9)."""
    s = _vector("scores", scores)
    k = conformal_rank(len(s), coverage)
    if k > len(s):
        return None
    return float(np.partition(s, k - 1)[k - 1])


def _kendall_tau(mean: np.ndarray, y: np.ndarray) -> float | None:
    """Kendall τ-b of predictions against values; None below 3 points or when either is constant."""
    from scipy.stats import kendalltau

    if len(y) < 3 or np.ptp(mean) == 0 or np.ptp(y) == 0:
        return None
    tau = kendalltau(mean, y).statistic
    return float(tau) if np.isfinite(tau) else None


def interval_report(mean, var, y, coverage: float = 0.9) -> dict:
    """Calibration of held-out Gaussian predictions ``(mean, var)`` against measured ``y``.

    Returns ``n``; ``nominal`` (= ``coverage``); ``covered`` (how many ``y`` fell inside
    ``mean ± z·sqrt(var)``, ends included) and ``empirical`` (that share); ``z``; ``kendall_tau`` of
    ``mean`` against ``y`` (None below 3 points or when either is constant); ``median_width`` of the
    intervals (``2·z·sqrt(var)``); and ``scale``, the split-conformal factor (module docstring;
    None when ``⌈(n+1)·coverage⌉ > n``). ``ValueError`` for inputs of different lengths, empty,
    non-finite, or a variance that is not > 0."""
    from scipy.stats import norm

    coverage = _check_coverage(coverage)
    mean, var, y = _vector("mean", mean), _vector("var", var), _vector("y", y)
    if not len(mean) == len(var) == len(y):
        raise ValueError(f"mean, var and y must have the same length, got {len(mean)}, {len(var)} and {len(y)}")
    if not len(y):
        raise ValueError("interval_report needs at least one prediction")
    if (var <= 0).any():
        raise ValueError(f"var must be > 0 everywhere, got min {var.min()!r}")
    z = float(norm.ppf(0.5 + coverage / 2))
    sd = np.sqrt(var)
    scores = np.abs(y - mean) / sd
    covered = int(np.count_nonzero(scores <= z))
    q = conformal_quantile(scores, coverage)
    return {"n": len(y), "nominal": coverage, "covered": covered, "empirical": covered / len(y), "z": z,
            "kendall_tau": _kendall_tau(mean, y), "median_width": float(np.median(2 * z * sd)),
            "scale": None if q is None else q / z}


def cross_val_scores(make_model: Callable[[], object], X, y, *, folds: int = 10, seed: int = 0) -> np.ndarray:
    """Standardised held-out errors ``|y − mean| / sqrt(var)``, one per row: each row is predicted by a
    model (``make_model()``, sklearn-style ``fit``/``predict_dist``) fitted without its fold, of
    ``min(folds, n)`` seeded random folds (leave-one-out when ``n <= folds``). Feed them to
    :func:`conformal_quantile` for a cross-conformal interval factor. Every fold model needs the
    other folds' rows to fit, so ``n >= 2`` and ``folds >= 2``."""
    X = np.asarray(X, dtype=np.float64)
    y = _vector("y", y)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if X.ndim != 2 or len(X) != len(y) or len(y) < 2:
        raise ValueError(f"cross_val_scores needs a 2-D X and y with the same >= 2 rows, got {X.shape} and {y.shape}")
    k = min(int(folds), len(y))
    fold = np.random.default_rng(seed).permutation(len(y)) % k
    scores = np.empty(len(y))
    for f in range(k):
        test = fold == f
        mean, var = make_model().fit(X[~test], y[~test]).predict_dist(X[test])
        scores[test] = np.abs(y[test] - np.asarray(mean)) / np.sqrt(np.asarray(var))
    return scores

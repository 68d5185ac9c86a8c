"""Calibrated prediction intervals for a ``nas profile`` latency model (split-conformal, multiplicative).

Contract: :func:`calibrate` returns, per predictor, the interval a prediction ``v`` is given,
``[v·e^-q, v·e^q]`` with nominal coverage ``coverage`` (the ``intervals`` section of the report):

* ``model_log_q``: the split-conformal quantile (:func:`predictors.calibration.conformal_quantile`)
  of ``|log(measured / predicted)|`` over *out-of-fold* predictions of the fit split (5-fold
  cross-validation: every fit subnet predicted by a model that did not see it). Relative error,
  because the predictors fit relative error and latencies span decades;
* ``drift_log_q``: the same quantile of how far the machine's speed beside each measured subnet was
  from the run's typical speed (:func:`nas.profiling._interleaved.drift_ratios` of the subnet runs,
  not the held-out re-measurements, which check the interval); a later re-measurement
  sees the machine at another moment, while predictions are at the run's typical speed (0 without
  drift correction: the residuals then carry the drift themselves);
* ``log_q = sqrt(model_log_q² + drift_log_q²)`` (independent errors in log space).

It is then *checked* on data neither the model nor the quantile saw: ``held_out_coverage`` is the
share of held-out subnets whose (drift-corrected) measurement lies inside the model-only interval,
``remeasured_coverage`` the share of their raw re-measurements (minutes later) inside the full one;
``median_rel_width`` is ``(hi - lo) / v`` = ``2·sinh(log_q)``. A predictor with too few fit subnets
for the coverage (fewer than ~1/(1-coverage)) gets ``None``: no interval rather than a made-up one.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from predictors.calibration import conformal_quantile

FOLDS = 5


def out_of_fold(fit: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]], n: int,
                seed: int) -> np.ndarray:
    """Out-of-fold predictions of ``n`` rows: ``fit(train_rows)`` returns ``predict(test_rows)``."""
    folds = np.random.default_rng(seed).permutation(n) % FOLDS
    predicted = np.empty(n)
    for k in range(FOLDS):
        test = np.flatnonzero(folds == k)
        train = np.flatnonzero(folds != k)
        if test.size:
            predicted[test] = fit(train)(test)
    return predicted


def log_scores(measured: Sequence[float], predicted: Sequence[float]) -> np.ndarray:
    """``|log(measured / predicted)|``, a non-positive prediction counting as 1 µs."""
    y = np.asarray(measured, dtype=np.float64)
    p = np.maximum(np.asarray(predicted, dtype=np.float64), 1e-6)
    return np.abs(np.log(y / p))


def _inside(measured, predicted, log_q: float) -> float:
    return float(np.mean(log_scores(measured, predicted) <= log_q + 1e-12))


def interval_entry(*, coverage: float, cv_scores: np.ndarray, drift: np.ndarray, test_measured, test_predicted,
                   test_remeasured_raw) -> dict | None:
    """One predictor's ``intervals`` entry (module docstring), or None with too few fit subnets."""
    model_q = conformal_quantile(cv_scores, coverage)
    if model_q is None:
        return None
    drift_q = conformal_quantile(drift, coverage) if len(drift) else 0.0
    drift_q = float(np.max(drift)) if drift_q is None else drift_q
    log_q = float(np.hypot(model_q, drift_q))
    return {"coverage": coverage, "model_log_q": float(model_q), "drift_log_q": float(drift_q), "log_q": log_q,
            "n_calibration": int(len(cv_scores)), "n_held_out": int(len(test_measured)),
            "held_out_coverage": _inside(test_measured, test_predicted, model_q),
            "remeasured_coverage": _inside(test_remeasured_raw, test_predicted, log_q),
            "median_rel_width": float(2 * np.sinh(log_q))}


def scaled(value: float, log_q: float) -> tuple[float, float] | None:
    """``(v·e^-log_q, v·e^log_q)``; None for ``v <= 0`` (a clamped negative prediction has no
    multiplicative interval)."""
    if value <= 0:
        return None
    k = float(np.exp(log_q))
    return float(value) / k, float(value) * k


def bounds(values: np.ndarray, entry: dict | None) -> list[tuple[float, float] | None]:
    """:func:`scaled` by the entry's ``log_q`` per value, or None each without an entry."""
    if entry is None:
        return [None] * len(values)
    return [scaled(float(v), entry["log_q"]) for v in values]


def consistency_error(entry: dict, *, n_fit: int, n_held_out: int) -> str | None:
    """Why an ``intervals`` entry read from a file cannot be what :func:`interval_entry` wrote for a
    report with these split sizes (a narrowed or invented interval), or None."""
    from predictors.calibration import conformal_rank

    if not np.isclose(entry["log_q"], np.hypot(entry["model_log_q"], entry["drift_log_q"])):
        return "log_q is not the root sum of squares of model_log_q and drift_log_q"
    if entry["n_calibration"] != n_fit or entry["n_held_out"] != n_held_out:
        return f"n_calibration/n_held_out must be the report's n_fit/n_held_out ({n_fit}/{n_held_out})"
    if conformal_rank(n_fit, entry["coverage"]) > n_fit:
        return f"{n_fit} fit subnets cannot bound a {entry['coverage']:g} interval"
    if not np.isclose(entry["median_rel_width"], 2 * np.sinh(entry["log_q"])):
        return "median_rel_width is not 2·sinh(log_q)"
    return None

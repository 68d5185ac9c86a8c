"""The predicted quantization drop carries an interval: none before the predictor has data, Gaussian
(uncalibrated) on a few drops, cross-conformal once there are enough to cover at the nominal rate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from nas.training.quantized import DROP_COVERAGE, QuantizedEvaluator, QuantizedResult
from predictors.quantization import drop_features
from search_spaces import get_space

SPACE = get_space("tiny_mbv3+q")
NOISE = 0.01  # measurement noise of a drop (the ensemble's spread only sees parameter uncertainty)


def _truth(archs, rng):
    X = drop_features(SPACE, archs)
    sensitivity = np.zeros(X.shape[1])
    sensitivity[SPACE.labels.index("head")] = 0.05
    sensitivity[len(SPACE.labels)] = 0.02  # every int8 MAC costs a little
    return X @ sensitivity + rng.normal(0, NOISE, len(archs))


def _evaluator(n_measured: int, seed: int = 0) -> QuantizedEvaluator:
    """A QuantizedEvaluator whose drops were 'measured' from a known truth (no checkpoint, no PTQ)."""
    rng = np.random.default_rng(seed)
    archs = list({a.arch_id: a for a in (SPACE.sample(rng) for _ in range(n_measured * 2))}.values())[:n_measured]
    ev = object.__new__(QuantizedEvaluator)
    ev.space, ev._archs, ev._results, ev._drop_fit = SPACE, {}, {}, None
    for arch, drop in zip(archs, _truth(archs, rng)):
        ev._archs[arch.arch_id] = arch
        ev._results[arch.arch_id] = QuantizedResult(
            arch_id=arch.arch_id, precision=SPACE.policy(arch).label, top1=0.9 - drop, float_top1=0.9, n=100,
            agreement=None, max_logit_diff=None, calibration="minmax-32", collapsed=False, ptq_s=0.0)
    return ev


def _fresh(n: int, seed: int = 99):
    rng = np.random.default_rng(seed)
    archs = [SPACE.sample(rng) for _ in range(n)]
    return archs, _truth(archs, rng)


def test_no_interval_before_the_predictor_has_data():
    metrics = _evaluator(3).predicted_drop(_fresh(2)[0])
    assert all(m.interval is None and m.coverage is None and m.spread is None and m.value == 0 for m in metrics)


def test_a_few_drops_give_a_prediction_but_no_uncalibrated_interval():
    metrics = _evaluator(6).predicted_drop(_fresh(5)[0])  # 6 drops: the 90% conformal rank (9) does not exist
    assert all(m.spread is not None and m.spread > 0 for m in metrics)
    assert all(m.interval is None and m.coverage is None for m in metrics)


def test_enough_drops_give_a_calibrated_interval():
    ev = _evaluator(150)
    archs, truth = _fresh(600)
    metrics = ev.predicted_drop(archs)
    lo, hi = np.array([m.interval for m in metrics]).T
    value, sd = np.array([m.value for m in metrics]), np.array([m.spread for m in metrics])
    covered = np.mean((lo <= truth) & (truth <= hi))
    assert covered == pytest.approx(0.9, abs=0.06)
    gaussian = np.mean(np.abs(truth - value) <= norm.ppf(0.95) * sd)  # the raw spread misses the noise
    assert gaussian < 0.75
    assert all(m.coverage == 0.9 and m.profile == "ptq-drop@150" for m in metrics)
    assert ev.predicted_drop(archs[:3])[0] == metrics[0]  # cached until another drop is measured

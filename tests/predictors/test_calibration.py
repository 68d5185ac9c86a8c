"""Calibration of a predictor's (mean, var): Gaussian interval coverage, Kendall τ, the conformal factor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from predictors.calibration import conformal_quantile, interval_report


def _synthetic(n: int, *, true_scale: float, seed: int = 0):
    """Predictions with known truth: ``y ~ N(mean, (true_scale·sd)²)`` while the predictor says ``var = sd²``."""
    rng = np.random.default_rng(seed)
    mean = rng.uniform(0.5, 0.9, n)
    sd = rng.uniform(0.005, 0.05, n)
    y = mean + true_scale * sd * rng.standard_normal(n)
    return mean, sd ** 2, y


def test_a_calibrated_predictor_covers_at_the_nominal_rate():
    mean, var, y = _synthetic(2000, true_scale=1.0)
    report = interval_report(mean, var, y, coverage=0.9)
    assert report["n"] == 2000 and report["nominal"] == 0.9
    assert report["empirical"] == pytest.approx(0.9, abs=0.025)  # binomial sd at n=2000 is 0.0067
    assert report["covered"] == round(report["empirical"] * 2000)
    assert report["z"] == pytest.approx(1.6449, abs=1e-4)
    assert report["scale"] == pytest.approx(1.0, abs=0.06)
    assert report["median_width"] == pytest.approx(float(np.median(2 * 1.6449 * np.sqrt(var))), rel=1e-4)
    assert report["kendall_tau"] > 0.5  # the spread of the means dwarfs the noise


@pytest.mark.parametrize("factor", [0.5, 2.0, 3.0])
def test_a_mis_scaled_variance_is_seen_and_its_factor_recovered(factor):
    mean, var, y = _synthetic(2000, true_scale=factor, seed=1)
    report = interval_report(mean, var, y, coverage=0.9)
    assert report["scale"] == pytest.approx(factor, rel=0.08)
    gaussian = math.erf(1.6449 / factor / math.sqrt(2))  # what mean ± z·sd really covers
    assert report["empirical"] == pytest.approx(gaussian, abs=0.03)
    # widening by the reported factor restores the nominal coverage
    fixed = interval_report(mean, var * report["scale"] ** 2, y, coverage=0.9)
    assert fixed["empirical"] == pytest.approx(0.9, abs=0.02) and fixed["scale"] == pytest.approx(1.0, abs=1e-9)


def test_conformal_quantile_uses_the_finite_sample_rank():
    scores = np.arange(1.0, 20.0)  # 19 scores: 1..19
    assert conformal_quantile(scores, 0.9) == 18.0  # ceil(20 × 0.9) = 18th smallest
    assert conformal_quantile(scores[:9], 0.9) == 9.0  # ceil(10 × 0.9) = 9 exactly: not rounded up to 10
    assert conformal_quantile(scores[:8], 0.9) is None  # ceil(9 × 0.9) = 9 > 8
    assert conformal_quantile(scores[::-1], 0.5) == 10.0  # order does not matter: ceil(20 × 0.5) = 10
    assert conformal_quantile([3.0], 0.4) == 3.0 and conformal_quantile([], 0.5) is None
    assert conformal_quantile(np.arange(1.0, 100.0), 0.07) == 7.0  # 100 × 0.07 is 7.000000000000001 in floats
    rng = np.random.default_rng(0)  # the guarantee: a new exchangeable score is below it >= 90% of the time
    hits = [rng.random() <= conformal_quantile(rng.random(9), 0.9) for _ in range(4000)]
    assert np.mean(hits) == pytest.approx(0.9, abs=0.02)


def test_small_and_degenerate_inputs():
    report = interval_report([0.5, 0.6], [0.01, 0.01], [0.5, 0.9])
    assert report["n"] == 2 and report["kendall_tau"] is None and report["scale"] is None
    assert report["covered"] == 1 and report["empirical"] == 0.5
    flat = interval_report([0.5] * 5, [0.01] * 5, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert flat["kendall_tau"] is None  # a constant prediction ranks nothing


@pytest.mark.parametrize("args,message", [
    (([0.5, 0.6], [0.01], [0.5, 0.6]), "same length"),
    (([0.5, np.nan], [0.01, 0.01], [0.5, 0.6]), "mean must be finite"),
    (([0.5, 0.6], [0.01, np.inf], [0.5, 0.6]), "var must be finite"),
    (([0.5, 0.6], [0.01, 0.0], [0.5, 0.6]), "var must be > 0"),
    (([], [], []), "at least one"),
    (([[0.5]], [[0.1]], [[0.5]]), "1-D"),
])
def test_bad_inputs_are_one_line_value_errors(args, message):
    with pytest.raises(ValueError, match=message) as err:
        interval_report(*args)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("coverage", [0, 1, 1.5, -0.1, True, "0.9", float("nan")])
def test_coverage_must_be_a_fraction(coverage):
    with pytest.raises(ValueError, match="coverage must be a fraction"):
        interval_report([0.5], [0.1], [0.5], coverage=coverage)
    with pytest.raises(ValueError, match="coverage must be a fraction"):
        conformal_quantile([1.0], coverage)

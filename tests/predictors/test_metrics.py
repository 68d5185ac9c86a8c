"""Predictor metrics agree with scipy and reject bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from predictors.metrics import kendall_tau, regression_report, rmse, spearman, within_pct


def test_rank_metrics_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, 80).astype(float)
    b = a + rng.normal(0, 1.5, 80)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b)[0], abs=1e-12)
    assert spearman(a, np.ones_like(a)) == 0.0


def test_rmse_and_within_pct():
    t = np.array([10.0, 10.0, 10.0, 10.0])
    p = np.array([10.5, 9.0, 11.5, 10.0])
    assert rmse(t, p) == pytest.approx(np.sqrt((0.25 + 1 + 2.25) / 4))
    assert within_pct(t, p) == 0.75
    assert within_pct(t, p, 20) == 1.0
    report = regression_report(t, p)
    assert set(report) == {"n", "rmse", "within_10pct", "spearman", "kendall_tau"} and report["n"] == 4


@pytest.mark.parametrize("t,p,match", [([], [], "non-empty"), ([1.0, 2.0], [1.0], "equally long"),
                                       ([1.0, np.nan], [1.0, 2.0], "finite")])
def test_bad_input(t, p, match):
    with pytest.raises(ValueError, match=match):
        rmse(t, p)


def test_within_pct_needs_positive_truth():
    with pytest.raises(ValueError, match="positive"):
        within_pct([0.0, 1.0], [0.0, 1.0])

"""AccuracyEnsemble: ranking quality, epistemic variance, determinism, JSON round trip, bad inputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from predictors.accuracy import (
    AccuracyEnsemble,
    _mlp_forward,
    _mlp_params,
    _trees_forward,
    _trees_params,
    selection_score,
)
from predictors.features import one_hot
from predictors.latency import NotFittedError as LatencyNotFittedError
from predictors.errors import NotFittedError
from predictors.metrics import kendall_tau, rmse
from search_spaces import NASError, get_space

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data():
    """One-hot rows of ofa_mbv3 archs; the target is a saturating function of a weighted encoding
    plus an interaction between two groups of settings, plus noise."""
    space = get_space("ofa_mbv3")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(600)]
    X = np.vstack([one_hot(space, a) for a in archs])
    u = np.vstack([space.encode(a) for a in archs]) / (space.cardinalities - 1)
    w = rng.uniform(0.2, 1.0, size=u.shape[1])
    s = u @ w / w.sum()
    y = 0.55 + 0.25 * (1 - np.exp(-4 * s)) + 0.04 * np.sin(6 * u[:, :8].mean(1)) * u[:, 8:16].mean(1)
    y = y + rng.normal(0.0, 0.002, size=y.size)
    return X[:400], y[:400], X[400:], y[400:]


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _, _ = data
    return AccuracyEnsemble(seed=0).fit(X, y)


def test_ranks_held_out_archs_better_than_a_constant(data, fitted):
    _, y, X_test, y_test = data
    mean, var = fitted.predict_dist(X_test)
    assert mean.shape == var.shape == (len(y_test),)
    tau = kendall_tau(y_test, mean)
    assert tau > 0.6, tau
    assert kendall_tau(y_test, np.full_like(y_test, y.mean())) == 0.0
    assert rmse(y_test, mean) < 0.6 * rmse(y_test, np.full_like(y_test, y.mean()))
    np.testing.assert_array_equal(fitted.predict(X_test), mean)


def test_mean_and_variance_come_from_the_members(data, fitted):
    _, _, X_test, _ = data
    members = fitted.member_predictions(X_test)
    assert members.shape == (fitted.n_members + 1, len(X_test))  # the MLPs plus the boosted trees
    mean, var = fitted.predict_dist(X_test)
    np.testing.assert_allclose(mean, members.mean(axis=0))
    np.testing.assert_allclose(var, np.maximum(members.var(axis=0), fitted.var_floor))
    assert (var > 0).all()
    lone = AccuracyEnsemble(n_members=1, n_trees=0).fit(*data[:2])
    _, lone_var = lone.predict_dist(X_test)
    assert lone.var_floor > 0 and (lone_var == lone.var_floor).all()


def test_variance_is_higher_far_from_the_training_data(data, fitted):
    X, _, _, _ = data
    _, var_train = fitted.predict_dist(X)
    centre = X.mean(axis=0)
    _, var_far = fitted.predict_dist(centre + 4.0 * (X - centre))  # extrapolated rows
    assert np.median(var_far) > 10 * np.median(var_train)
    assert np.mean(var_far > var_train) > 0.9


def test_fit_is_deterministic_per_seed(data):
    X, y, X_test, _ = data
    kw = dict(n_members=2, n_trees=20)
    a = AccuracyEnsemble(seed=3, **kw).fit(X[:200], y[:200]).predict_dist(X_test)
    b = AccuracyEnsemble(seed=3, **kw).fit(X[:200], y[:200]).predict_dist(X_test)
    c = AccuracyEnsemble(seed=4, **kw).fit(X[:200], y[:200]).predict_dist(X_test)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], c[0])


def test_json_round_trip_predicts_identically(data, fitted):
    _, _, X_test, _ = data
    text = json.dumps(fitted.to_dict(), allow_nan=False)
    again = AccuracyEnsemble.from_dict(json.loads(text))
    assert again.params() == fitted.params()
    for got, want in zip(again.predict_dist(X_test), fitted.predict_dist(X_test)):
        np.testing.assert_array_equal(got, want)
    blank = AccuracyEnsemble.from_dict(json.loads(json.dumps(AccuracyEnsemble(seed=7, n_trees=0).to_dict())))
    assert blank.params()["seed"] == 7 and not blank.fitted
    with pytest.raises(NotFittedError):
        blank.predict(X_test)
    with pytest.raises(ValueError, match="kind='arch_level'"):
        AccuracyEnsemble.from_dict({"kind": "arch_level"})
    with pytest.raises(ValueError, match="format 99"):
        AccuracyEnsemble.from_dict({**fitted.to_dict(), "format": 99})


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_exported_members_match_sklearn():
    """The plain-array copies of the sklearn members predict what sklearn predicts."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 5))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    Z = rng.normal(size=(300, 5)) * 2
    mlp = MLPRegressor(hidden_layer_sizes=(8, 4), solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
    np.testing.assert_allclose(_mlp_forward(_mlp_params(mlp), Z), mlp.predict(Z), rtol=1e-12, atol=1e-12)
    many = rng.normal(size=(40_000, 5))  # more rows than one block of the tree walk
    gbm = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0).fit(X, y)
    np.testing.assert_allclose(_trees_forward(_trees_params(gbm), many), gbm.predict(many), rtol=1e-12, atol=1e-12)
    for depth in (1, 2, 5):  # depth 5 on 60 rows leaves early leaves to pad
        gbm = GradientBoostingRegressor(n_estimators=15, max_depth=depth, subsample=0.8, random_state=0).fit(X, y)
        np.testing.assert_allclose(_trees_forward(_trees_params(gbm), Z), gbm.predict(Z), rtol=1e-12, atol=1e-12)


def test_bad_inputs_raise(data):
    X, y, _, _ = data
    for kw in ({"n_members": 0}, {"n_members": True}, {"seed": -1}, {"seed": 1.5}, {"alpha": float("nan")},
               {"max_iter": 0}, {"n_trees": -1}, {"tree_depth": 0}, {"tree_depth": 9}, {"learning_rate": 0.0},
               {"hidden_layer_sizes": ()}, {"hidden_layer_sizes": (0,)}):
        with pytest.raises(ValueError, match=re.escape(f"got {next(iter(kw.values()))!r}")):
            AccuracyEnsemble(**kw)
    with pytest.raises(TypeError):
        AccuracyEnsemble(0)  # keyword-only
    model = AccuracyEnsemble(n_members=1, n_trees=5)
    with pytest.raises(NotFittedError, match="before fit"):
        model.predict(X)
    with pytest.raises(NotFittedError):
        model.predict_dist(X)
    assert issubclass(NotFittedError, NASError) and LatencyNotFittedError is NotFittedError
    bad_X = X[:50].copy()
    bad_X[3, 4] = np.nan
    with pytest.raises(ValueError, match="finite"):
        model.fit(bad_X, y[:50])
    with pytest.raises(ValueError, match="finite"):
        model.fit(X[:50], np.where(np.arange(50) == 7, np.inf, y[:50]))
    with pytest.raises(ValueError, match="2-D"):
        model.fit(X[0], y[:1])
    with pytest.raises(ValueError, match="rows but y"):
        model.fit(X[:50], y[:49])
    with pytest.raises(ValueError, match="at least 2 rows"):
        model.fit(X[:1], y[:1])
    model.fit(X[:50], y[:50, None])  # a column vector of targets is fine
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:5, :-1])
    with pytest.raises(ValueError, match="finite"):
        model.predict(bad_X)


def test_selection_score_is_an_upper_confidence_bound():
    mean = np.array([0.70, 0.72, 0.71])
    var = np.array([0.0004, 0.0, 0.0001])
    np.testing.assert_allclose(selection_score(mean, var, kappa=0.0), mean)
    np.testing.assert_allclose(selection_score(mean, var, kappa=2.0), [0.74, 0.72, 0.73])
    assert int(np.argmax(selection_score(mean, var, kappa=2.0))) == 0
    for kappa in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="kappa"):
            selection_score(mean, var, kappa=kappa)
    with pytest.raises(ValueError, match="same shape"):
        selection_score(mean, var[:2], kappa=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        selection_score(mean, -var - 1e-3, kappa=1.0)
    with pytest.raises(TypeError):
        selection_score(mean, var, 1.0)  # kappa is keyword-only


def test_package_exports_lazily_without_sklearn():
    code = ("import sys, predictors; assert 'sklearn' not in sys.modules; "
            "from predictors import AccuracyEnsemble, selection_score, NotFittedError, kendall_tau; "
            "assert 'AccuracyEnsemble' in dir(predictors)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

"""The contract every predictor keeps (``predictors``: sklearn-style ``fit``/``predict``), as a
reusable pytest suite.

Subclass :class:`PredictorContract` and give it two fixtures: ``predictor_factory``, a callable
``seed -> unfitted predictor``, and ``dataset``, a tuple ``(X_train, y_train, X_test)`` in the
predictor's own input format (feature rows, layer tables, MAC counts…)::

    import pytest
    from nas.testing.predictors import PredictorContract

    class TestMyPredictor(PredictorContract):
        @pytest.fixture
        def predictor_factory(self):
            return lambda seed: MyPredictor(seed=seed)
        @pytest.fixture
        def dataset(self):
            return X_train, y_train, X_test

What it checks: ``fit`` returns the predictor, ``predict`` gives ``(n,)`` finite floats (and
``NotFittedError`` before ``fit``), ``predict_dist`` (where offered) gives ``(mean, var)`` with
``mean == predict`` and ``var >= 0``, the same seed gives the same predictions, and
``to_dict``/``from_dict`` (where offered) round-trip through plain JSON, never pickle: the
reloaded model predicts exactly the same.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import pytest

from predictors.errors import NotFittedError

__all__ = ["PredictorContract", "assert_no_pickle"]

#: Pickle starts with the PROTO opcode (0x80) then the protocol number; base64 turns that into "gA".
_PICKLE_PREFIXES = ("\x80", "gAJ", "gAN", "gAS", "gAU", "gAV")


def assert_no_pickle(data: Any, where: str = "") -> None:
    """``data`` holds only JSON types, and no string in it looks like a (base64) pickle."""
    if isinstance(data, dict):
        for key, value in data.items():
            assert isinstance(key, str), f"{where}: key {key!r} is not a string"
            assert_no_pickle(value, f"{where}.{key}")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            assert_no_pickle(value, f"{where}[{i}]")
    elif isinstance(data, str):
        assert not data.startswith(_PICKLE_PREFIXES), f"{where}: looks like a pickle: {data[:16]!r}"
    else:
        assert data is None or isinstance(data, (bool, int, float)), f"{where}: {type(data).__name__} is not JSON"


def _forbid_pickle(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a predictor must load from JSON, never through pickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)


class PredictorContract:
    """Every test takes ``predictor_factory`` and ``dataset``; see the module docstring."""

    @pytest.fixture
    def predictor_factory(self):
        raise NotImplementedError("give your PredictorContract subclass a `predictor_factory` fixture")

    @pytest.fixture
    def dataset(self):
        raise NotImplementedError("give your PredictorContract subclass a `dataset` fixture (X, y, X_test)")

    @pytest.fixture
    def fitted_predictor(self, predictor_factory, dataset):
        X, y, _ = dataset
        return predictor_factory(0).fit(X, y)

    def test_fit_returns_the_predictor_and_predict_one_value_per_row(self, predictor_factory, dataset):
        X, y, X_test = dataset
        model = predictor_factory(0)
        assert model.fit(X, y) is model
        for rows in (X_test, X):
            got = model.predict(rows)
            assert isinstance(got, np.ndarray) and got.shape == (len(rows),), np.shape(got)
            assert np.issubdtype(got.dtype, np.floating) and np.isfinite(got).all()

    def test_predict_before_fit_raises_not_fitted(self, predictor_factory, dataset):
        model = predictor_factory(0)
        with pytest.raises(NotFittedError):
            model.predict(dataset[2])
        if hasattr(model, "predict_dist"):
            with pytest.raises(NotFittedError):
                model.predict_dist(dataset[2])

    def test_predict_dist_gives_mean_and_non_negative_variance(self, fitted_predictor, dataset):
        if not hasattr(fitted_predictor, "predict_dist"):
            pytest.skip(f"{type(fitted_predictor).__name__} offers no predict_dist")
        X_test = dataset[2]
        mean, var = fitted_predictor.predict_dist(X_test)
        assert mean.shape == var.shape == (len(X_test),)
        assert np.isfinite(mean).all() and np.isfinite(var).all() and (var >= 0).all()
        np.testing.assert_allclose(mean, fitted_predictor.predict(X_test), rtol=1e-12, atol=1e-12)

    def test_same_seed_gives_same_predictions(self, predictor_factory, dataset, fitted_predictor):
        X, y, X_test = dataset
        again = predictor_factory(0).fit(X, y)
        np.testing.assert_array_equal(again.predict(X_test), fitted_predictor.predict(X_test))

    def test_json_round_trip_predicts_the_same_without_pickle(self, fitted_predictor, dataset, monkeypatch):
        if not hasattr(fitted_predictor, "to_dict"):
            pytest.skip(f"{type(fitted_predictor).__name__} has no to_dict/from_dict serialisation")
        data = fitted_predictor.to_dict()
        assert_no_pickle(data)
        text = json.dumps(data, allow_nan=False)
        _forbid_pickle(monkeypatch)
        loaded = type(fitted_predictor).from_dict(json.loads(text))
        X_test = dataset[2]
        np.testing.assert_array_equal(loaded.predict(X_test), fitted_predictor.predict(X_test))
        if hasattr(fitted_predictor, "predict_dist"):
            for a, b in zip(loaded.predict_dist(X_test), fitted_predictor.predict_dist(X_test)):
                np.testing.assert_array_equal(a, b)
        assert json.dumps(loaded.to_dict(), allow_nan=False) == text  # a reload saves the same

    def test_an_unfitted_predictor_round_trips_unfitted(self, predictor_factory, dataset, monkeypatch):
        model = predictor_factory(0)
        if not hasattr(model, "to_dict"):
            pytest.skip(f"{type(model).__name__} has no to_dict/from_dict serialisation")
        text = json.dumps(model.to_dict(), allow_nan=False)
        _forbid_pickle(monkeypatch)
        with pytest.raises(NotFittedError):
            type(model).from_dict(json.loads(text)).predict(dataset[2])

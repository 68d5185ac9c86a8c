"""The contract every predictor in ``predictors`` keeps, through ``nas.testing.predictors``.

Each predictor gets a small seeded problem over ``tiny_mbv3`` in its own input format: feature
rows (accuracy ensemble, arch-level latency), layer tables (kernel-level latency), MAC counts
(the MACs proxy). A predictor exported by ``predictors`` without a case here fails
``test_every_predictor_has_a_case``.
"""

from __future__ import annotations

import numpy as np
import pytest

import predictors
from hw_profiles import macs
from nas.testing.predictors import PredictorContract
from predictors import AccuracyEnsemble, ArchLevelPredictor, KernelLevelPredictor, MacsProxyPredictor
from predictors.features import arch_features
from search_spaces import get_space

SPACE = get_space("tiny_mbv3")


def _archs(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [SPACE.sample(rng) for _ in range(n)]


TRAIN, TEST = _archs(40, 0), _archs(12, 1)


def _latency_ms(archs) -> np.ndarray:
    """Positive, MAC-driven with a per-layer overhead and a little seeded noise."""
    rng = np.random.default_rng(5)
    rows = [SPACE.layers(a) for a in archs]
    return np.array([1e-6 * macs(r) + 0.02 * len(r) + 0.1 for r in rows]) * rng.uniform(0.95, 1.05, len(rows))


def _layer_table(archs) -> dict:
    rng = np.random.default_rng(6)
    workloads = {layer.workload for a in archs for layer in SPACE.layers(a)}
    return {w: 1e-6 * macs([w]) + 0.01 + 0.001 * rng.random() for w in sorted(workloads, key=repr)}


class TestAccuracyEnsemble(PredictorContract):
    @pytest.fixture
    def predictor_factory(self):
        return lambda seed: AccuracyEnsemble(seed=seed, n_members=2, hidden_layer_sizes=(8,), max_iter=50, n_trees=8)

    @pytest.fixture
    def dataset(self):
        X = arch_features(SPACE, TRAIN)
        y = 0.7 + 0.05 * np.tanh(X[:, :8].sum(axis=1) / 8 - 1)
        return X, y, arch_features(SPACE, TEST)


class TestArchLevelPredictor(PredictorContract):
    @pytest.fixture
    def predictor_factory(self):
        return lambda seed: ArchLevelPredictor()

    @pytest.fixture
    def dataset(self):
        return arch_features(SPACE, TRAIN), _latency_ms(TRAIN), arch_features(SPACE, TEST)


class TestKernelLevelPredictor(PredictorContract):
    @pytest.fixture
    def predictor_factory(self):
        table = _layer_table(TRAIN + TEST)
        return lambda seed: KernelLevelPredictor(layer_latency_ms=table)

    @pytest.fixture
    def dataset(self):
        return [SPACE.layers(a) for a in TRAIN], _latency_ms(TRAIN), [SPACE.layers(a) for a in TEST]


class TestMacsProxyPredictor(PredictorContract):
    @pytest.fixture
    def predictor_factory(self):
        return lambda seed: MacsProxyPredictor()

    @pytest.fixture
    def dataset(self):
        count = lambda archs: np.array([macs(SPACE.layers(a)) for a in archs], dtype=float)  # noqa: E731
        return count(TRAIN), _latency_ms(TRAIN), count(TEST)


def test_every_predictor_has_a_case():
    exported = {name for name in predictors.__all__
                if isinstance(getattr(predictors, name), type) and hasattr(getattr(predictors, name), "fit")}
    tested = {name.removeprefix("Test") for name, obj in globals().items()
              if isinstance(obj, type) and issubclass(obj, PredictorContract) and obj is not PredictorContract}
    assert exported == tested, f"predictors without a contract case: {sorted(exported - tested)}"

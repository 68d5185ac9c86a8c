"""Kernel-level, arch-level and MACs-proxy latency predictors: fit/predict, errors, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictors.features import EXTRAS, arch_features, layer_aggregates, one_hot
from predictors.latency import (
    ArchLevelPredictor,
    KernelLevelPredictor,
    MacsProxyPredictor,
    NotFittedError,
    UnknownLayerError,
)
from search_spaces import OPS, get_space


@pytest.fixture(scope="module")
def tiny():
    space = get_space("tiny_mbv3")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(200)]
    layers = [space.layers(a) for a in archs]
    table = {}
    for rows in layers:
        for layer in rows:
            table.setdefault(layer.workload, float(rng.uniform(0.01, 0.2)))
    return space, archs, layers, table


def test_kernel_level_recovers_overheads(tiny):
    _, _, layers, table = tiny
    true_sum = np.array([sum(table[l.workload] for l in rows) for rows in layers])
    n_layers = np.array([len(rows) for rows in layers])
    y = 1.3 * true_sum + 0.004 * n_layers + 0.05
    model = KernelLevelPredictor(layer_latency_ms=table).fit(layers, y)
    floor = min(table.values())
    assert model.overhead_floor_ms == floor > 0
    np.testing.assert_allclose(model.coef_, [1.3, 0.004 + 1.3 * floor, 0.05], rtol=1e-6)
    np.testing.assert_allclose(model.predict(layers), y, rtol=1e-6)
    np.testing.assert_allclose(model.sum_ms(layers), true_sum)


def test_kernel_level_takes_out_a_call_overhead_standalone_layers_pay(tiny):
    """Each standalone layer carried a call overhead the network does not pay (as onnxruntime's ~9 µs
    per tiny_vit row): with f = 0 and b >= 0 the fit could not take it out; now it can, up to the floor."""
    _, _, layers, table = tiny
    overhead = 0.8 * min(table.values())
    y = np.array([1.3 * sum(table[l.workload] - overhead for l in rows) + 0.05 for rows in layers])
    model = KernelLevelPredictor(layer_latency_ms=table).fit(layers, y)
    np.testing.assert_allclose(model.predict(layers), y, rtol=1e-6)
    old = model.to_dict()
    del old["overhead_floor_ms"]  # a file written before the floor: read with f = 0, as it was fitted
    again = KernelLevelPredictor.from_dict(json.loads(json.dumps(old)))
    assert again.overhead_floor_ms == 0.0
    np.testing.assert_allclose(again.predict(layers), model._design(layers) @ model.coef_
                               + model.overhead_floor_ms * model.coef_[0] * np.array([len(r) for r in layers]))
    with pytest.raises(ValueError, match="overhead_floor_ms must be a number"):
        KernelLevelPredictor.from_dict({**model.to_dict(), "overhead_floor_ms": 1e6})


def test_kernel_level_names_missing_layers_and_round_trips(tiny):
    _, _, layers, table = tiny
    first = layers[0][0].workload
    partial = {k: v for k, v in table.items() if k != first}
    model = KernelLevelPredictor(layer_latency_ms=partial)
    assert model.missing(layers[:1]) == [first]
    with pytest.raises(UnknownLayerError, match="not in the latency table"):
        model.fit(layers[:1], [1.0])
    fitted = KernelLevelPredictor(layer_latency_ms=table).fit(layers, np.linspace(1, 2, len(layers)))
    again = KernelLevelPredictor.from_dict(json.loads(json.dumps(fitted.to_dict())))
    np.testing.assert_allclose(again.predict(layers), fitted.predict(layers))
    with pytest.raises(NotFittedError):
        KernelLevelPredictor(layer_latency_ms=table).predict(layers)
    with pytest.raises(ValueError, match="empty"):
        KernelLevelPredictor(layer_latency_ms={})


def test_arch_level_fits_a_linear_latency_and_round_trips(tiny):
    space, archs, layers, _ = tiny
    X = arch_features(space, archs)
    assert X.shape == (200, int(space.cardinalities.sum()) + len(OPS) * 5 + len(EXTRAS))
    assert one_hot(space, archs[0]).sum() == len(space.params)
    agg = np.vstack([layer_aggregates(rows) for rows in layers])
    y = 0.5 + 2e-4 * agg[:, 6] + 1e-5 * agg[:, 1]  # pwconv and conv MACs
    model = ArchLevelPredictor().fit(X[:160], y[:160])
    assert model.alpha_ in ArchLevelPredictor.ALPHAS
    np.testing.assert_allclose(model.predict(X[160:]), y[160:], rtol=0.01)
    again = ArchLevelPredictor.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(again.predict(X), model.predict(X))
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :5])


def test_macs_proxy_and_bad_targets():
    x = np.array([1e6, 2e6, 4e6])
    model = MacsProxyPredictor().fit(x, 0.1 + 1e-6 * x)
    np.testing.assert_allclose(model.predict([3e6]), [3.1])
    with pytest.raises(ValueError, match="positive"):
        MacsProxyPredictor().fit(x, [1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="rows"):
        ArchLevelPredictor().fit(np.ones((3, 2)), [1.0, 2.0])
    with pytest.raises(ValueError, match="alpha"):
        ArchLevelPredictor(alpha=-1.0)

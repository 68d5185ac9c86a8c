"""The contract every cost model keeps (``hw_profiles.cost_model``), as reusable pytest suites.

:class:`CostModelContract` is for models that estimate from the layer table (``metrics(layers)``:
analytic, GPU roofline, MCU, FPGA, yours); :class:`MeasuredCostModelContract` for models that time
a built network (``measure(arch)``). Subclass one and give it a ``cost_model`` fixture::

    import pytest
    from nas.testing.cost_models import CostModelContract

    class TestMyModel(CostModelContract):
        monotone_metrics = ("latency_ms", "flash_kb")  # never smaller for a bigger arch
        @pytest.fixture
        def cost_model(self):
            return MyCostModel(get_profile("my-board.toml"))

Class attributes to set: ``monotone_metrics`` (never decrease when one size knob grows),
``antitone_metrics`` (never increase, e.g. ``feasible``) and ``decomposable_metrics`` (must have a
vectorised block table; the others are checked where ``BlockCostTable.fit`` accepts them).
Fixtures to override: ``space`` (default ``tiny_mbv3``), ``profile_ref`` (default
``cost_model.profile.ref``), ``size_params`` (default: every knob with ascending numeric options:
width/expand, kernel, depth, resolution) and ``archs`` (the largest, the smallest and 8 random).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from hw_profiles import SOURCES, MeasurementRequiredError, Metric
from search_spaces import MobileNetV3Space, get_space

__all__ = ["CostModelContract", "MeasuredCostModelContract", "grown"]

_REF = re.compile(r"^[^@\s]+@\S+$")  # name@version


def _check_metric(name: str, metric, ref: str) -> None:
    assert isinstance(metric, Metric), f"{name}: {metric!r} is not a Metric"
    assert math.isfinite(metric.value) and metric.value >= 0, f"{name} = {metric.value}"
    assert metric.source in SOURCES, f"{name}: source {metric.source!r}"
    assert isinstance(metric.unit, str) and metric.unit, f"{name}: unit {metric.unit!r}"
    assert _REF.match(metric.profile) and metric.profile == ref, f"{name}: profile {metric.profile!r}, not {ref!r}"
    if metric.spread is not None:
        assert math.isfinite(metric.spread) and metric.spread >= 0, f"{name}: spread {metric.spread}"


def grown(space, arch, name: str):
    """``arch`` with the knob ``name`` at its next larger option (canonical), or None at the top."""
    options = list(space.params[space.names.index(name)].options)
    i = options.index(arch[name])
    if i + 1 == len(options):
        return None
    return space.canonicalize(space.parse({**arch.to_dict(), name: options[i + 1]}))


def _ascending_numbers(options) -> bool:
    numbers = all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in options)
    return numbers and len(options) > 1 and all(a < b for a, b in zip(options, options[1:]))


class _Fixtures:
    @pytest.fixture
    def cost_model(self):
        raise NotImplementedError("give your contract subclass a `cost_model` fixture")

    @pytest.fixture
    def space(self):
        return get_space("tiny_mbv3")

    @pytest.fixture
    def profile_ref(self, cost_model) -> str:
        return cost_model.profile.ref


class CostModelContract(_Fixtures):
    """For ``metrics(layers) -> {name: Metric}`` models; see the module docstring."""

    monotone_metrics: tuple[str, ...] = ()
    antitone_metrics: tuple[str, ...] = ()
    decomposable_metrics: tuple[str, ...] = ()

    @pytest.fixture
    def size_params(self, space) -> tuple[str, ...]:
        return tuple(p.name for p in space.params if _ascending_numbers(p.options))

    @pytest.fixture
    def archs(self, space) -> list:
        rng = np.random.default_rng(0)
        return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(8)]

    def test_values_are_finite_non_negative_metrics_with_provenance(self, cost_model, space, archs, profile_ref):
        names = None
        for arch in archs:
            metrics = cost_model.metrics(space.layers(arch))
            assert metrics, "a cost model gives at least one metric"
            assert names is None or set(metrics) == names, "every arch gets the same metric names"
            names = set(metrics)
            for name, metric in metrics.items():
                _check_metric(name, metric, profile_ref)

    def test_declared_metrics_exist(self, cost_model, space):
        names = set(cost_model.metrics(space.layers(space.smallest())))
        declared = set(self.monotone_metrics) | set(self.antitone_metrics) | set(self.decomposable_metrics)
        assert declared <= names, f"declared but not given: {sorted(declared - names)}"

    def test_is_a_pure_function_of_the_layer_table(self, cost_model, space, archs):
        first = [{k: m.value for k, m in cost_model.metrics(space.layers(a)).items()} for a in archs]
        again = [{k: m.value for k, m in cost_model.metrics(space.layers(a)).items()} for a in reversed(archs)]
        assert first == again[::-1]  # caches do not change results, whatever the order

    def test_a_bigger_arch_is_never_cheaper(self, cost_model, space, archs, size_params):
        if not (self.monotone_metrics or self.antitone_metrics):
            pytest.skip("no metric declared monotone or antitone")
        assert size_params, "no size knob to grow"
        for arch in archs:
            base = cost_model.metrics(space.layers(arch))
            for knob in size_params:
                bigger = grown(space, arch, knob)
                if bigger is None:
                    continue
                got = cost_model.metrics(space.layers(bigger))
                for name in self.monotone_metrics:
                    tol = 1e-12 * abs(base[name].value)
                    assert got[name].value >= base[name].value - tol, f"{name} fell when {knob} grew: {arch.to_json()}"
                for name in self.antitone_metrics:
                    tol = 1e-12 * abs(base[name].value)
                    assert got[name].value <= base[name].value + tol, f"{name} rose when {knob} grew: {arch.to_json()}"

    def test_block_tables_equal_the_exact_per_arch_path(self, cost_model, space):
        from hw_profiles.block_table import BlockCostTable, NotDecomposableError

        if not isinstance(space, MobileNetV3Space):
            pytest.skip(f"block tables need a MobileNetV3Space, got {type(space).__name__}")
        rng = np.random.default_rng(7)
        raw = rng.integers(0, space.cardinalities, size=(40, len(space.params)))  # inactive slots too
        archs = [space.decode(row) for row in raw] + [space.largest(), space.smallest()]
        codes = np.vstack([raw, space.encode(space.largest()), space.encode(space.smallest())])
        exact_rows = [cost_model.metrics(space.layers(a)) for a in archs]
        tabled = []
        for name in sorted(exact_rows[0]):
            try:
                table = BlockCostTable.fit(space, lambda layers, n=name: cost_model.metrics(layers)[n].value, n_check=8)
            except NotDecomposableError:
                assert name not in self.decomposable_metrics, f"{name} must have a block table"
                continue
            exact = np.array([row[name].value for row in exact_rows])
            np.testing.assert_allclose(table.evaluate(codes), exact, rtol=1e-12, atol=1e-9, err_msg=name)
            tabled.append(name)
        assert set(self.decomposable_metrics) <= set(tabled)


class MeasuredCostModelContract(_Fixtures):
    """For models that time a built network (``measure(arch) -> {name: Metric}``); these take seconds."""

    def test_measure_gives_measured_metrics_with_provenance(self, cost_model, space, profile_ref):
        metrics = cost_model.measure(space.smallest())
        assert metrics
        for name, metric in metrics.items():
            _check_metric(name, metric, profile_ref)
            assert metric.source == "measured" and metric.spread is not None, name
            assert metric.value > 0, name

    def test_a_layer_table_cannot_be_measured(self, cost_model, space):
        with pytest.raises(MeasurementRequiredError):
            cost_model.metrics(space.layers(space.smallest()))

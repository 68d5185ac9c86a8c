"""Vectorised block tables reproduce the exact per-arch cost models, or refuse."""

from __future__ import annotations

import numpy as np
import pytest

from hw_profiles import cost_model_for, get_profile, macs, params
from hw_profiles.block_table import BlockCostTable, NotDecomposableError, SpaceCodes
from search_spaces import Choice, SearchSpace, get_space


def _metric(name):
    if name == "macs":
        return lambda layers: float(macs(layers))
    if name == "params":
        return lambda layers: float(params(layers))
    device, metric = name.split(".")
    model = cost_model_for(get_profile(device))
    return lambda layers: model.metrics(layers)[metric].value


@pytest.mark.parametrize("space_name", ["tiny_mbv3", "ofa_mbv3"])
@pytest.mark.parametrize("name,rule", [("macs", "sum"), ("params", "sum"), ("stm32f746.peak_sram_kb", "max"),
                                       ("stm32f746.flash_kb", "sum"), ("stm32h743.latency_ms", "sum"),
                                       ("a100.latency_ms", "sum")])
def test_tables_match_the_exact_cost_models(space_name, name, rule):
    space = get_space(space_name)
    fn = _metric(name)
    table = BlockCostTable.fit(space, fn, n_check=8)
    assert table.rule == rule
    rng = np.random.default_rng(7)
    archs = [space.sample(rng) for _ in range(150)]
    exact = np.array([fn(space.layers(a)) for a in archs])
    got = table.evaluate(np.vstack([space.encode(a) for a in archs]))
    np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-9)


def test_non_decomposable_metrics_and_spaces_are_refused():
    space = get_space("tiny_mbv3")
    with pytest.raises(NotDecomposableError):
        BlockCostTable.fit(space, _metric("zcu104.latency_ms"))  # the FPGA model is not per-block
    with pytest.raises(NotDecomposableError, match="MobileNetV3Space"):
        SpaceCodes(SearchSpace("mine", [Choice("a", [1, 2])]))


def test_canonical_codes_match_canonicalize():
    space = get_space("ofa_mbv3")
    rng = np.random.default_rng(3)
    raw = rng.integers(0, space.cardinalities, size=(200, len(space.params)))
    expected = np.vstack([space.encode(space.canonicalize(space.decode(r))) for r in raw])
    np.testing.assert_array_equal(SpaceCodes(space).canonical(raw), expected)

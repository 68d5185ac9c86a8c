"""layer_module(spec) runs exactly the ops of one LayerSpec row: same MACs and params."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw_profiles.analytic import layer_macs, layer_params
from search_spaces import LayerSpec, get_space
from supernets import count_macs_params
from supernets.layer_module import layer_input_shape, layer_module


def _workloads(space_name: str, n: int) -> list[LayerSpec]:
    space, rng = get_space(space_name), np.random.default_rng(0)
    seen: dict = {}
    for arch in [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(n))]:
        for layer in space.layers(arch):
            seen.setdefault(layer.workload)
    return list(seen)


@pytest.mark.parametrize("space_name", ["tiny_mbv3", "ofa_mbv3"])
def test_macs_and_params_match_the_layer_table(space_name):
    workloads = _workloads(space_name, 3)
    assert {w.op for w in workloads} == {"conv", "pwconv", "dwconv", "gap", "linear"}
    assert any(w.se for w in workloads) and any(w.residual for w in workloads)
    for spec in workloads:
        module = layer_module(spec)
        assert count_macs_params(module, layer_input_shape(spec)) == (layer_macs(spec), layer_params(spec)), spec


def test_output_shape_and_residual_add():
    spec = LayerSpec("pwconv", 16, 8, 1, 1, 1, (6, 6), residual=True, bn=True)
    module = layer_module(spec)
    x = torch.randn(layer_input_shape(spec))
    out = module(x)
    assert out.shape == (1, 8, 6, 6)
    assert torch.allclose(out - module.skip, module.body(x))
    assert not torch.allclose(module(torch.randn_like(x)), out)  # the output depends on the input


def test_linear_takes_a_flat_input_and_block_label_does_not_matter():
    spec = LayerSpec("linear", 32, 10, 1, 1, 1, (1, 1), bias=True, block="classifier")
    assert layer_input_shape(spec) == (1, 32)
    assert layer_module(spec)(torch.randn(1, 32)).shape == (1, 10)
    assert spec.workload == LayerSpec("linear", 32, 10, 1, 1, 1, (1, 1), bias=True)


def test_rejects_non_layerspec():
    with pytest.raises(ValueError, match="LayerSpec"):
        layer_module({"op": "conv"})

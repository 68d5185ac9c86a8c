"""The contract every registered supernet keeps (see supernets/base.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw_profiles import macs, params
from search_spaces import InvalidArchError
from supernets import count_macs_params, list_supernets
from supernets.testing import enliven

# ofa_mbv3 runs at up to 224 px, so it gets fewer random archs in the default run.
N_ARCHS = {"tiny_mbv3": 12, "ofa_mbv3": 4}
SUPERNETS = list_supernets()


def random_archs(space, name: str, seed: int):
    rng = np.random.default_rng(seed)
    archs = [space.largest(), space.smallest()]
    archs += [space.sample(rng) for _ in range(N_ARCHS.get(name, 4))]
    return archs


@pytest.mark.parametrize("name", SUPERNETS)
def test_extract_equals_active_supernet(name, supernet_cache):
    supernet = supernet_cache(name)
    for i, arch in enumerate(random_archs(supernet.space, name, seed=1)):
        enliven(supernet, arch, seed=i)
        gen = torch.Generator().manual_seed(i)
        x = torch.randn(supernet.input_shape(arch, batch=2), generator=gen)
        with supernet.active(arch), torch.no_grad():
            expected = supernet(x)
        subnet = supernet.extract(arch)
        with torch.no_grad():
            got = subnet(x)
        assert got.shape == (2, supernet.space.num_classes)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        # Real signal: the two inputs must give clearly different outputs.
        assert (expected[0] - expected[1]).abs().max() > 1e-2 * expected.abs().max()


@pytest.mark.parametrize("name", SUPERNETS)
def test_extracted_macs_and_params_equal_layer_table(name, supernet_cache):
    supernet = supernet_cache(name)
    for arch in random_archs(supernet.space, name, seed=2):
        rows = supernet.space.layers(arch)
        counted = count_macs_params(supernet.extract(arch), supernet.input_shape(arch))
        assert counted == (macs(rows), params(rows)), arch.to_json()


@pytest.mark.parametrize("name", SUPERNETS)
def test_active_context_restores_previous_arch_even_on_error(name, supernet_cache):
    supernet = supernet_cache(name)
    space = supernet.space
    supernet.set_active(space.largest())
    with supernet.active(space.smallest()):
        assert supernet.active_arch == space.smallest()
    assert supernet.active_arch == space.largest()
    with pytest.raises(RuntimeError, match="boom"):
        with supernet.active(space.smallest()):
            raise RuntimeError("boom")
    assert supernet.active_arch == space.largest()


@pytest.mark.parametrize("name", SUPERNETS)
def test_extract_is_independent_eval_module_and_keeps_active_arch(name, supernet_cache):
    supernet = supernet_cache(name)
    space = supernet.space
    supernet.set_active(space.largest())
    subnet = supernet.extract(space.smallest())
    assert supernet.active_arch == space.largest()
    assert not subnet.training
    before = supernet.stem[0].weight.detach().clone()
    with torch.no_grad():
        for p in subnet.parameters():
            p.add_(1.0)
    torch.testing.assert_close(supernet.stem[0].weight, before)
    assert not any("Elastic" in type(m).__name__ for m in subnet.modules())


@pytest.mark.parametrize("name", SUPERNETS)
def test_set_active_rejects_arch_of_another_space(name, supernet_cache):
    supernet = supernet_cache(name)
    other = supernet_cache(next(n for n in SUPERNETS if n != name)) if len(SUPERNETS) > 1 else None
    if other is None:
        pytest.skip("needs two registered supernets")
    with pytest.raises(InvalidArchError, match="belongs to space"):
        supernet.set_active(other.space.largest())


@pytest.mark.parametrize("name", SUPERNETS)
def test_input_shape_follows_resolution(name, supernet_cache):
    supernet = supernet_cache(name)
    space = supernet.space
    for r in space.resolutions:
        arch = space.parse({**space.largest().to_dict(), "r": r})
        assert supernet.input_shape(arch, batch=3) == (3, space.in_channels, r, r)
    with pytest.raises(ValueError, match="batch"):
        supernet.input_shape(space.largest(), batch=0)

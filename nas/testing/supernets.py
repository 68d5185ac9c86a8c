"""The contract every supernet keeps (``supernets.base.Supernet``), as a reusable pytest suite.

Subclass :class:`SupernetContract` in a test module and give it a ``supernet`` fixture returning
your (seeded) supernet; the tests may change its weights (``enliven``) and its active arch::

    import pytest
    from nas.testing.supernets import SupernetContract

    class TestMySupernet(SupernetContract):
        @pytest.fixture
        def supernet(self):
            return MySupernet(my_space, seed=0)

Optional fixtures to override: ``n_random_archs`` (random archs checked besides the largest and
smallest; default 4) and ``foreign_arch`` (an arch of another space, which ``set_active`` must
refuse; default: one of a one-choice space named after yours).
"""

from __future__ import annotations

import numpy as np
import pytest

from hw_profiles import macs, params
from search_spaces import Choice, InvalidArchError, SearchSpace
from supernets import count_macs_params
from supernets.testing import enliven

__all__ = ["SupernetContract", "random_archs"]


def random_archs(space, n: int, seed: int) -> list:
    """The largest and smallest arch, then ``n`` random ones."""
    rng = np.random.default_rng(seed)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


class SupernetContract:
    """Every test takes ``supernet``; see the module docstring."""

    @pytest.fixture
    def supernet(self):
        raise NotImplementedError("give your SupernetContract subclass a `supernet` fixture")

    @pytest.fixture
    def n_random_archs(self) -> int:
        return 4

    @pytest.fixture
    def foreign_arch(self, supernet):
        return SearchSpace(f"not-{supernet.space.name}", [Choice("a", [1])]).largest()

    def test_extract_equals_active_supernet(self, supernet, n_random_archs):
        import torch

        for i, arch in enumerate(random_archs(supernet.space, n_random_archs, seed=1)):
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

    def test_extracted_macs_and_params_equal_layer_table(self, supernet, n_random_archs):
        for arch in random_archs(supernet.space, n_random_archs, seed=2):
            rows = supernet.space.layers(arch)
            counted = count_macs_params(supernet.extract(arch), supernet.input_shape(arch))
            assert counted == (macs(rows), params(rows)), arch.to_json()

    def test_active_context_restores_previous_arch_even_on_error(self, supernet):
        space = supernet.space
        supernet.set_active(space.largest())
        with supernet.active(space.smallest()):
            assert supernet.active_arch == space.smallest()
        assert supernet.active_arch == space.largest()
        with pytest.raises(RuntimeError, match="boom"):
            with supernet.active(space.smallest()):
                raise RuntimeError("boom")
        assert supernet.active_arch == space.largest()

    def test_extract_is_independent_eval_module_and_keeps_active_arch(self, supernet):
        import torch

        space = supernet.space
        supernet.set_active(space.largest())
        subnet = supernet.extract(space.smallest())
        assert supernet.active_arch == space.largest()
        assert not subnet.training
        before = {k: v.detach().clone() for k, v in supernet.state_dict().items()}
        with torch.no_grad():
            for p in subnet.parameters():
                p.add_(1.0)
        after = supernet.state_dict()
        assert before.keys() == after.keys()
        for key, value in before.items():  # e.g. stem[0].weight: no weight is shared with the subnet
            torch.testing.assert_close(after[key], value, msg=lambda m, key=key: f"{key}: {m}")
        assert not any("Elastic" in type(m).__name__ for m in subnet.modules())

    def test_set_active_rejects_arch_of_another_space(self, supernet, foreign_arch):
        with pytest.raises(InvalidArchError, match="belongs to space"):
            supernet.set_active(foreign_arch)

    def test_input_shape_follows_resolution(self, supernet):
        space = supernet.space
        for arch in (space.largest(), space.smallest()):
            assert supernet.input_shape(arch, batch=3) == (3, *space.input_shape(arch))
        for r in getattr(space, "resolutions", ()):  # an elastic family: its input resolutions
            arch = space.with_resolution(space.largest(), r)
            assert supernet.input_shape(arch, batch=3) == (3, space.in_channels, r, r)
        with pytest.raises(ValueError, match="batch"):
            supernet.input_shape(space.largest(), batch=0)

    def test_block_scopes_cover_every_parameter_once(self, supernet, n_random_archs):
        for arch in random_archs(supernet.space, n_random_archs, seed=3):
            scopes = supernet.block_scopes(arch)
            assert set(scopes) == {row.block for row in supernet.space.layers(arch)}, arch.to_json()
            paths = [p for paths in scopes.values() for p in paths]
            subnet = supernet.extract(arch)
            modules = dict(subnet.named_modules())
            assert all(p in modules for p in paths), paths
            for name, _ in subnet.named_parameters():
                owners = [p for p in paths if name.startswith(p + ".")]
                assert len(owners) == 1, (name, owners)

"""The contract every registered supernet keeps (see supernets/base.py), through ``nas.testing.supernets``."""

from __future__ import annotations

import pytest

from nas.testing.supernets import SupernetContract
from supernets import list_supernets

# ofa_mbv3 and autoformer_t run at up to 224 px, so they get fewer random archs in the default run.
N_ARCHS = {"tiny_mbv3": 12, "ofa_mbv3": 4, "tiny_vit": 12, "autoformer_t": 2}
SUPERNETS = list_supernets()


@pytest.fixture(params=SUPERNETS)
def supernet_name(request) -> str:
    return request.param


class TestRegisteredSupernets(SupernetContract):
    @pytest.fixture
    def supernet(self, supernet_name, supernet_cache):
        return supernet_cache(supernet_name)

    @pytest.fixture
    def n_random_archs(self, supernet_name):
        return N_ARCHS.get(supernet_name, 4)

    @pytest.fixture
    def foreign_arch(self, supernet_name, supernet_cache):
        """The largest arch of another registered supernet's space."""
        if len(SUPERNETS) < 2:
            pytest.skip("needs two registered supernets")
        return supernet_cache(next(n for n in SUPERNETS if n != supernet_name)).space.largest()


def test_the_suite_covers_every_registered_supernet():
    """Every supernet the packages register (read in a fresh interpreter: tests register their own)."""
    import subprocess
    import sys

    code = "from supernets import list_supernets; print(','.join(list_supernets()))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert SUPERNETS and SUPERNETS == run.stdout.strip().split(","), (SUPERNETS, run.stdout)

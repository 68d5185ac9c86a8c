"""Fixtures shared by the kernels tests."""

from __future__ import annotations

import pytest

from search_spaces import get_space
from supernets import create_supernet
from supernets.testing import enliven


@pytest.fixture(scope="module")
def subnet():
    """An enlivened tiny_mbv3 largest subnet (outputs with signal) and its batch-1 input shape."""
    space = get_space("tiny_mbv3")
    arch = space.largest()
    supernet = create_supernet("tiny_mbv3", seed=0)
    enliven(supernet, arch, seed=3)
    return supernet.extract(arch).eval(), (1, *space.input_shape(arch))

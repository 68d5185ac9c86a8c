"""Shared fixtures. Everything is seeded; nothing downloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from supernets import create_supernet

torch.set_flush_denormal(True)  # as `nas train` does: denormal activations make CPU steps ~5x slower


@pytest.fixture(scope="session")
def supernet_cache():
    """One supernet per name per test session (building ofa_mbv3 costs ~0.3 s).

    Tests that change weights must call ``enliven`` (which re-randomises what they depend on) or
    build their own supernet.
    """
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = create_supernet(name, seed=0)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A `nas train` folder of tiny_mbv3 on mnist-mini, 6 steps (~10 s): real weights for the tests
    that evaluate or export from a checkpoint. Shared: tests must not change its weights."""
    from nas.cli import main

    run = tmp_path_factory.mktemp("tiny-checkpoint") / "run"
    assert main(["train", "--out", str(run), "--epochs", "1", "--steps-per-epoch", "6", "--batch-size", "32",
                 "--no-progress"]) == 0
    return run


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "nas" / "jobs"))  # search_toy: the user space of the search tests


def pytest_collection_modifyitems(config, items):
    """GPU tests skip, with the reason, where no CUDA GPU is usable (CI has none)."""
    from kernels.cuda import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

"""BatchNorm recalibration: re-estimate running statistics for one subnet."""

from __future__ import annotations

from itertools import islice
from typing import Iterable

import torch
from torch import nn

from search_spaces import ArchConfig
from supernets.base import Supernet


def has_batchnorm(module: nn.Module) -> bool:
    """Whether any BatchNorm layer is in ``module`` (a ViT has none: nothing to recalibrate)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def recalibrate_bn(supernet: Supernet, arch: ArchConfig, batches: Iterable, n_batches: int) -> int:
    """Reset every BatchNorm's running stats and re-estimate them as the exact average over
    ``n_batches`` batches run through ``arch`` (train-mode BN, no gradients, nothing else changes).

    ``batches`` yields input tensors or ``(inputs, targets)`` pairs. Channels the subnet does not
    use are reset too: recalibrate again before running another subnet. Returns the number of
    batches used; raises ``ValueError`` if there were none. A network without BatchNorm runs
    nothing and returns 0.
    """
    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")
    norms = [m for m in supernet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    saved = [(m, m.momentum) for m in norms]
    was_training = supernet.training
    used = 0
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: every batch weighs the same
        supernet.train()
        with supernet.active(arch), torch.no_grad():
            for batch in islice(batches, n_batches):
                inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
                supernet(inputs)
                used += 1
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        supernet.train(was_training)
    if used == 0:
        raise ValueError("recalibrate_bn got no batches")
    return used

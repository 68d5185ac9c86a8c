"""Count MACs and params of a real module with forward hooks (OFA's counter convention).

Conv2d: ``in/groups × kh × kw × output elements``; Linear: ``in × out``; nothing else.
Params: every parameter of the module. Used to check modules against the layer table.
"""

from __future__ import annotations

import torch
from torch import nn


def count_macs_params(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(macs, params)`` of one forward pass on zeros of ``input_shape`` (batch 1 expected)."""
    total = [0]

    def on_conv(m: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        total[0] += m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] * output.numel()

    def on_linear(m: nn.Linear, _inputs, _output) -> None:
        total[0] += m.in_features * m.out_features

    hooks = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(on_linear))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(input_shape))
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    return total[0], sum(p.numel() for p in module.parameters())

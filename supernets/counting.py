"""Count MACs and params of a real module with forward hooks (OFA's counter convention), plus the
activation × activation matmuls of attention.

Conv2d: ``in/groups × kh × kw × output elements``; Linear: ``in × out`` per output vector (so a
linear applied to every token counts once per token); ``torch.matmul``/``@``/``bmm`` (attention's
q kᵀ and a v): ``output elements × contracted size``; nothing else (norms, softmax, pooling, adds).
Params: every parameter of the module. Used to check modules against the layer table.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

_MATMULS = {torch.matmul, torch.bmm, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.Tensor.bmm}


class _MatmulCounter(TorchFunctionMode):
    """Adds the MACs of every matmul called at the Python level (``F.linear`` is not one of them)."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _MATMULS and isinstance(out, torch.Tensor):
            self.macs += out.numel() * args[0].shape[-1]
        return out


def count_macs_params(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(macs, params)`` of one forward pass on zeros of ``input_shape`` (batch 1 expected)."""
    total = [0]

    def on_conv(m: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        total[0] += m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] * output.numel()

    def on_linear(m: nn.Linear, _inputs, output: torch.Tensor) -> None:
        total[0] += m.in_features * output.numel()  # in × out per output vector

    hooks = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(on_linear))
    was_training = module.training
    counter = _MatmulCounter()
    try:
        module.eval()
        with torch.no_grad(), counter:
            module(torch.zeros(input_shape))
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    return total[0] + counter.macs, sum(p.numel() for p in module.parameters())

"""One ``LayerSpec`` row as a standalone module: what kernel-level latency tables time.

Contract: ``layer_module(spec)`` builds the same ops the extracted network runs for that row, with
the same MACs and params as ``hw_profiles.analytic`` counts: the conv (+ BN) + activation (+ SE),
global average pooling, or the classifier ``Linear``. A ``residual`` row also adds a fixed tensor of
its output shape, standing in for the block input, so the add is timed too. ``layer_input_shape``
gives the batch-1 input the module takes: ``(1, C, H, W)``, or ``(1, C)`` for ``linear``. Weights are
Kaiming-random and BN statistics random, from ``seed``: latency does not depend on them.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces import LayerSpec
from supernets.static import SqueezeExcite, conv_bn_act


class _AddSkip(nn.Module):
    """``body(x) + skip`` with a fixed ``skip``: the residual add of a block's last op."""

    def __init__(self, body: nn.Module, skip_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("skip", torch.randn(skip_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip


class _GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


def layer_input_shape(spec: LayerSpec) -> tuple[int, ...]:
    """Batch-1 input shape of :func:`layer_module`'s module."""
    if spec.op == "linear":
        return (1, spec.in_channels)
    return (1, spec.in_channels, *spec.in_hw)


def layer_module(spec: LayerSpec, *, seed: int = 0) -> nn.Module:
    """A module in eval mode running exactly the ops of ``spec`` (see the module docstring)."""
    if not isinstance(spec, LayerSpec):
        raise ValueError(f"layer_module needs a LayerSpec, got {type(spec).__name__}")
    torch.manual_seed(seed)
    if spec.op == "gap":
        module: nn.Module = _GlobalAvgPool()
    elif spec.op == "linear":
        module = nn.Linear(spec.in_channels, spec.out_channels, bias=spec.bias)
    else:
        module = conv_bn_act(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, spec.act,
                             groups=spec.groups, bn=spec.bn, bias=spec.bias)
        if spec.se:
            module = nn.Sequential(module, SqueezeExcite(spec.out_channels, spec.se_channels))
        if spec.residual:
            module = _AddSkip(module, (1, spec.out_channels, *spec.out_hw))
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return module.eval()

"""One ``LayerSpec`` row as a standalone module: what kernel-level latency tables time.

Contract: ``layer_module(spec)`` builds the same ops the extracted network runs for that row, with
the same MACs and params as ``hw_profiles.analytic`` counts: the conv (+ BN) + activation (+ SE),
global average pooling, the classifier ``Linear``, and the transformer rows:

- ``patch_embed``: a conv with ``kernel == stride`` and no padding, with bias (its output map is the
  token grid; flattening it is free);
- ``tokens``: prepends the cls token and adds the position embedding, ``(1, N, C) -> (1, N+1, C)``;
- ``layernorm``: ``nn.LayerNorm(C)`` over ``(1, T, C)``;
- ``linear`` over ``T > 1`` tokens: ``nn.Linear`` on ``(1, T, C)`` (then GELU where ``act="gelu"``);
- ``matmul``: a batched product per head on ``(1, heads, T, a)`` with a fixed second operand
  (a buffer, like the residual's stand-in): ``q @ kᵀ`` scaled by ``a^-1/2`` where the output is
  the scores (``out/heads == T``: QKᵀ), else ``scores @ v`` (AV);
- ``softmax``: over the last axis of the ``(1, heads, T, T)`` scores.

A ``residual`` row also adds a fixed tensor of its output shape, standing in for the block input,
so the add is timed too. ``layer_input_shape`` gives the batch-1 input the module takes:
``(1, C, H, W)`` for convs and pooling, ``(1, C)`` for the classifier ``linear`` (one vector),
``(1, T, C)`` for the token rows, ``(1, heads, T, a)`` for ``matmul`` and ``softmax``. Weights are
Kaiming-random (linears: PyTorch's default), BN statistics, the cls token and position embedding
random, from ``seed``: latency does not depend on them.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces import LayerSpec
from supernets.static import SqueezeExcite, conv_bn_act

TOKEN_OPS = ("tokens", "layernorm", "linear")
"""Ops whose input is ``(1, T, C)`` when ``in_hw = (T, 1)`` holds more than one token."""


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


class _Tokens(nn.Module):
    """Prepend the cls token, add the position embedding: ``(1, N, C) -> (1, N + 1, C)``."""

    def __init__(self, patches: int, channels: int) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.randn(1, 1, channels) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, patches + 1, channels) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos


class _Matmul(nn.Module):
    """``x @ operand`` per head with a fixed second operand: QKᵀ (``transpose``: the buffer is k,
    ``(1, heads, T, a)``, and the product is scaled by ``a^-1/2``) or AV (the buffer is v)."""

    def __init__(self, operand_shape: tuple[int, ...], *, transpose: bool) -> None:
        super().__init__()
        self.transpose = transpose
        self.scale = operand_shape[-1] ** -0.5
        self.register_buffer("operand", torch.randn(operand_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transpose:
            return (x @ self.operand.transpose(-2, -1)) * self.scale
        return x @ self.operand


class _Softmax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


def _tokens(spec: LayerSpec) -> int:
    return spec.in_hw[0] * spec.in_hw[1]


def _heads_shape(spec: LayerSpec) -> tuple[int, int, int, int]:
    """``(1, heads, T, a)``: a matmul's input (``a = in/heads``) or the softmax's scores."""
    tokens = _tokens(spec)
    if spec.op == "softmax":
        return (1, spec.in_channels // tokens, tokens, tokens)
    return (1, spec.groups, tokens, spec.in_channels // spec.groups)


def layer_input_shape(spec: LayerSpec) -> tuple[int, ...]:
    """Batch-1 input shape of :func:`layer_module`'s module (module doc)."""
    if spec.op in ("matmul", "softmax"):
        return _heads_shape(spec)
    if spec.op == "linear" and spec.in_hw == (1, 1):
        return (1, spec.in_channels)
    if spec.op in TOKEN_OPS:
        return (1, _tokens(spec), spec.in_channels)
    return (1, spec.in_channels, *spec.in_hw)


def _output_shape(spec: LayerSpec) -> tuple[int, ...]:
    if spec.op == "linear":
        shape = layer_input_shape(spec)
        return (*shape[:-1], spec.out_channels)
    return (1, spec.out_channels, *spec.out_hw)


def _transformer_module(spec: LayerSpec) -> nn.Module:
    """The module of a token, attention or linear row (module doc)."""
    if spec.op == "tokens":
        return _Tokens(_tokens(spec), spec.in_channels)
    if spec.op == "layernorm":
        return nn.LayerNorm(spec.in_channels)
    if spec.op == "softmax":
        return _Softmax()
    if spec.op == "matmul":
        _, heads, tokens, _ = _heads_shape(spec)
        width = spec.out_channels // heads
        if width == tokens:  # QKᵀ: the scores; the buffer is k
            return _Matmul((1, heads, tokens, spec.in_channels // heads), transpose=True)
        return _Matmul((1, heads, tokens, width), transpose=False)
    linear = nn.Linear(spec.in_channels, spec.out_channels, bias=spec.bias)
    return nn.Sequential(linear, nn.GELU()) if spec.act == "gelu" else linear


def layer_module(spec: LayerSpec, *, seed: int = 0) -> nn.Module:
    """A module in eval mode running exactly the ops of ``spec`` (see the module docstring)."""
    if not isinstance(spec, LayerSpec):
        raise ValueError(f"layer_module needs a LayerSpec, got {type(spec).__name__}")
    torch.manual_seed(seed)
    if spec.op == "gap":
        module: nn.Module = _GlobalAvgPool()
    elif spec.op in ("tokens", "layernorm", "softmax", "matmul", "linear"):
        module = _transformer_module(spec)
    elif spec.op == "patch_embed":
        module = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, 0, bias=spec.bias)
    else:
        module = conv_bn_act(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, spec.act,
                             groups=spec.groups, bn=spec.bn, bias=spec.bias)
        if spec.se:
            module = nn.Sequential(module, SqueezeExcite(spec.out_channels, spec.se_channels))
    if spec.residual:
        module = _AddSkip(module, _output_shape(spec))
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return module.eval()

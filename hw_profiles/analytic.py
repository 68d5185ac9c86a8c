"""Analytic costs read from the layer table: MACs, params, peak activation memory.

Convention (OFA's counter and most papers): MACs count conv and linear multiply-accumulates,
including SE's two 1×1 convs, and nothing else (no BN, activations, pooling, adds or the SE
multiply). Params count every trainable parameter: weights, biases, BN's affine pairs.
"""

from __future__ import annotations

from typing import Sequence

from search_spaces import LayerSpec


def layer_macs(layer: LayerSpec) -> int:
    """Multiply-accumulates of one row (its SE included)."""
    if layer.op == "gap":
        return 0
    oh, ow = layer.out_hw
    macs = layer.in_channels // layer.groups * layer.kernel * layer.kernel * layer.out_channels * oh * ow
    if layer.se:
        macs += 2 * layer.out_channels * layer.se_channels
    return macs


def layer_params(layer: LayerSpec) -> int:
    """Trainable parameters of one row (its SE and BN included)."""
    if layer.op == "gap":
        return 0
    count = layer.in_channels // layer.groups * layer.kernel * layer.kernel * layer.out_channels
    count += layer.out_channels * (int(layer.bias) + 2 * int(layer.bn))
    if layer.se:
        c, m = layer.out_channels, layer.se_channels
        count += c * m + m + m * c + c
    return count


def macs(layers: Sequence[LayerSpec]) -> int:
    return sum(layer_macs(layer) for layer in layers)


def params(layers: Sequence[LayerSpec]) -> int:
    return sum(layer_params(layer) for layer in layers)


def activation_elements(layers: Sequence[LayerSpec]) -> list[int]:
    """Per row, the elements live while it runs: its input, its output, and the block input
    held for a residual add (unless that block input *is* this row's input)."""
    held_by_row = [0] * len(layers)
    start = 0
    for i, layer in enumerate(layers):
        if i > 0 and layer.block != layers[i - 1].block:
            start = i
        if layer.residual:
            first = layers[start]
            block_input = first.in_channels * first.in_hw[0] * first.in_hw[1]
            for j in range(start + 1, i + 1):
                held_by_row[j] = block_input
    live = []
    for layer, held in zip(layers, held_by_row):
        n_in = layer.in_channels * layer.in_hw[0] * layer.in_hw[1]
        oh, ow = layer.out_hw
        live.append(n_in + layer.out_channels * oh * ow + held)
    return live


def peak_activation_bytes(layers: Sequence[LayerSpec], bytes_per_element: int) -> int:
    """The largest live input + output + residual set over the op sequence, in bytes, at batch 1."""
    if bytes_per_element < 1:
        raise ValueError(f"bytes_per_element must be >= 1, got {bytes_per_element}")
    return max(activation_elements(layers)) * bytes_per_element

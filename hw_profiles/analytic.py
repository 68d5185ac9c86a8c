"""Analytic costs read from the layer table: MACs, params, stored model bytes, peak activation memory.

Convention (OFA's counter and most papers; fvcore and PyTorch's flop counter for transformers):
MACs count conv and linear multiply-accumulates, including SE's two 1×1 convs and a
transformer's patch embedding and its two attention matmuls (QKᵀ and AV), and nothing else (no BN,
layer norm, softmax, activations, pooling, adds or the SE multiply). Params count every trainable
parameter: weights, biases, BN's and layer norm's affine pairs, the cls token and the position
embedding.

Model size (``weight_bytes``): the bytes a deployed network stores, at each row's
``LayerSpec.precision``, BN folded into the conv (one bias per output channel whether or not the
conv had its own). Per conv or linear (SE's reduce and expand convs included; ``gap`` stores
nothing): ``int8``: int8 weights + an int32 bias + a 4-byte requantisation scale per output channel
(per-channel scales, the default policy; per-tensor would store one); ``fp32``: 4-byte weights + a
4-byte bias. A row with no precision (a plain space) is the float network we train: fp32.
``peak_activation_bytes`` takes one ``bytes_per_element`` for every row and ignores row precisions
(the MCU model, ``hw_profiles.mcu``, counts per-row bytes).
"""

from __future__ import annotations

from typing import Sequence

from search_spaces import PRECISION_BITS, LayerSpec
from search_spaces.layers import WEIGHTED_OPS

BIAS_BYTES = 4  # int32 (int8 row) or fp32 bias per output channel, BN folded in
SCALE_BYTES = 4  # per-output-channel requantisation scale of a quantized (narrower than 32-bit) row


def layer_macs(layer: LayerSpec) -> int:
    """Multiply-accumulates of one row (its SE included)."""
    macs = layer.op_macs
    if layer.se:
        macs += 2 * layer.out_channels * layer.se_channels
    return macs


def layer_params(layer: LayerSpec) -> int:
    """Trainable parameters of one row (its SE and BN included)."""
    if layer.op == "layernorm":
        return 2 * layer.out_channels
    if layer.op == "tokens":
        return layer.out_elements + layer.out_channels  # position embedding + cls token
    if layer.op not in WEIGHTED_OPS:
        return 0
    count = layer.weights + layer.out_channels * (int(layer.bias) + 2 * int(layer.bn))
    if layer.se:
        c, m = layer.out_channels, layer.se_channels
        count += c * m + m + m * c + c
    return count


def conv_weight_bytes(cin: int, cout: int, kernel: int, groups: int, precision: str) -> int:
    """Stored bytes of one conv or linear at ``precision`` (a key of ``PRECISION_BITS``): its
    weights at the format's weight bits, a bias per output channel, and a requantisation scale per
    output channel when the weights are quantized (fewer than 32 bits)."""
    weight_bits = PRECISION_BITS[precision][0]
    per_channel = BIAS_BYTES + (SCALE_BYTES if weight_bits < 32 else 0)
    return cin // groups * kernel * kernel * cout * weight_bits // 8 + cout * per_channel


def layer_weight_bytes(layer: LayerSpec, unset: str = "fp32") -> int:
    """Stored bytes of one row at its precision (``unset`` where it has none): the op's conv plus
    SE's reduce and expand convs; a layer norm's affine pair and the token row's cls token and
    position embedding are stored as fp32 at any precision; other ops store nothing."""
    if layer.op in ("layernorm", "tokens"):
        return 4 * layer_params(layer)
    if layer.op not in WEIGHTED_OPS:
        return 0
    precision = layer.precision or unset
    total = conv_weight_bytes(layer.in_channels, layer.out_channels, layer.kernel, layer.groups, precision)
    if layer.se:
        c, m = layer.out_channels, layer.se_channels
        total += conv_weight_bytes(c, m, 1, 1, precision) + conv_weight_bytes(m, c, 1, 1, precision)
    return total


def weight_bytes(layers: Sequence[LayerSpec]) -> int:
    """Model size: the bytes the network stores, each row at its precision (unset rows: fp32);
    see the module docstring."""
    return sum(layer_weight_bytes(layer) for layer in layers)


def macs(layers: Sequence[LayerSpec]) -> int:
    return sum(layer_macs(layer) for layer in layers)


def params(layers: Sequence[LayerSpec]) -> int:
    return sum(layer_params(layer) for layer in layers)


def matmul_operand_elements(layer: LayerSpec) -> int:
    """Elements of an attention matmul's second operand (kᵀ for QKᵀ, v for AV: an activation, read
    where a conv reads its weights, ``in/groups × out``); 0 for every other op."""
    if layer.op != "matmul":
        return 0
    return layer.in_channels // layer.groups * layer.kernel * layer.kernel * layer.out_channels


def attention_held_elements(layers: Sequence[LayerSpec]) -> list[int]:
    """Per row, the elements of an attention's q/k/v tensor live beside the row's own input and
    output: the rows ``linear`` (q/k/v projection) → ``matmul`` (QKᵀ, which reads q) → ``softmax`` →
    ``matmul`` (AV) keep k and v while QKᵀ runs, and v through the softmax and AV. 0 elsewhere."""
    held = [0] * len(layers)
    for i in range(1, len(layers) - 2):
        qkv, qk, soft, av = layers[i - 1:i + 3]
        if (qkv.op, qk.op, soft.op, av.op) == ("linear", "matmul", "softmax", "matmul"):
            v = av.out_elements  # heads * head_dim * tokens, as q and k
            held[i], held[i + 1], held[i + 2] = 2 * v, v, v
    return held


def activation_elements(layers: Sequence[LayerSpec]) -> list[int]:
    """Per row, the elements live while it runs: its input, its output, the block input held for
    a residual add (unless that block input *is* this row's input) and an attention's held k/v
    (:func:`attention_held_elements`)."""
    held_by_row = [0] * len(layers)
    start = 0
    for i, layer in enumerate(layers):
        if i > 0 and layer.block != layers[i - 1].block:
            start = i
        if layer.residual:
            block_input = layers[start].in_elements
            for j in range(start + 1, i + 1):
                held_by_row[j] = block_input
    attention = attention_held_elements(layers)
    return [layer.in_elements + layer.out_elements + held + kv
            for layer, held, kv in zip(layers, held_by_row, attention)]


def peak_activation_bytes(layers: Sequence[LayerSpec], bytes_per_element: int) -> int:
    """The largest live input + output + residual set over the op sequence, in bytes, at batch 1."""
    if bytes_per_element < 1:
        raise ValueError(f"bytes_per_element must be >= 1, got {bytes_per_element}")
    return max(activation_elements(layers)) * bytes_per_element

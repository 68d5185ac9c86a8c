"""Numeric features of an architecture for predictors: its integer encoding, one-hot, and
aggregates of its layer table (per op kind: count, MACs, activation traffic, params).

Contract: every function is pure and deterministic; the feature layout depends only on the
space (``arch_features``) or is fixed (``layer_aggregates``), so rows from different archs of one
space line up column for column.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from search_spaces import OPS, ArchConfig, LayerSpec, SearchSpace

AGGREGATES = ("count", "macs", "in_elements", "out_elements", "params")
"""Per op kind, in ``OPS`` order (layer norm and softmax rows counted as their op kinds); then ``EXTRAS``."""

EXTRAS = ("se_count", "se_macs", "residual_adds", "hswish_rows", "gelu_rows", "gelu_elements")
"""Counts after the per-op block: SE modules and their MACs, residual adds, h-swish rows, GELU rows
and the elements they activate."""

FEATURE_LAYOUT = f"ops={','.join(OPS)};per_op={','.join(AGGREGATES)};extra={','.join(EXTRAS)}"
"""Names the column layout of :func:`layer_aggregates`; a saved model fitted on features records it
(``nas.profiling.latency_model``), so a file from a version with another layout is refused, never
read column for column into the wrong features."""


def _row(layer: LayerSpec) -> tuple[float, float, float, float, float]:
    """count, MACs of the op (attention matmuls included), input and output elements, and params:
    the weight tensor (bias excluded), or a layer norm's affine pair, or the cls token and position
    embedding of the token row."""
    if layer.op == "layernorm":
        params = 2 * layer.out_channels
    elif layer.op == "tokens":
        params = layer.out_elements + layer.out_channels
    else:
        params = layer.weights
    return 1.0, layer.op_macs, layer.in_elements, layer.out_elements, params


def layer_macs(layer: LayerSpec) -> float:
    """Multiply-accumulates of one row's op (SE excluded; 0 for rows without MACs)."""
    return float(layer.op_macs)


def layer_aggregates(layers: Sequence[LayerSpec]) -> np.ndarray:
    """``len(OPS) * len(AGGREGATES) + len(EXTRAS)`` floats summarising a layer table (``FEATURE_LAYOUT``)."""
    per_op = np.zeros((len(OPS), len(AGGREGATES)))
    extra = np.zeros(len(EXTRAS))
    for layer in layers:
        per_op[OPS.index(layer.op)] += _row(layer)
        if layer.se:
            extra[0] += 1
            extra[1] += 2 * layer.out_channels * layer.se_channels
        extra[2] += layer.residual
        extra[3] += layer.act == "hswish"
        if layer.act == "gelu":
            extra[4] += 1
            extra[5] += layer.out_elements
    return np.concatenate([per_op.ravel(), extra])


def one_hot_codes(cardinalities: Sequence[int], codes: np.ndarray) -> np.ndarray:
    """``(n, sum(cardinalities))`` indicator rows of ``(n, n_settings)`` integer option indices (the one
    home of the one-hot layout: setting by setting, one column per option)."""
    cards = np.asarray(cardinalities, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64).reshape(-1, len(cards))
    offsets = np.concatenate([[0], np.cumsum(cards)[:-1]])
    out = np.zeros((len(codes), int(cards.sum())))
    out[np.arange(len(codes))[:, None], offsets[None, :] + codes] = 1.0
    return out


def one_hot(space: SearchSpace, arch: ArchConfig) -> np.ndarray:
    """One indicator per (setting, option): ``sum(space.cardinalities)`` floats."""
    return one_hot_codes(space.cardinalities, space.encode(arch))[0]


def arch_features(space: SearchSpace, archs: Sequence[ArchConfig]) -> np.ndarray:
    """``(n, d)`` matrix: one-hot encoding then layer aggregates, one row per arch."""
    rows = [np.concatenate([one_hot(space, a), layer_aggregates(space.layers(a))]) for a in archs]
    if not rows:
        raise ValueError("arch_features needs at least one architecture")
    return np.vstack(rows)

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
"""Per op kind, in ``OPS`` order; then SE count, SE MACs, residual adds, h-swish rows."""


def _row(layer: LayerSpec) -> tuple[float, float, float, float, float]:
    oh, ow = layer.out_hw
    out_elements = layer.out_channels * oh * ow
    weights = layer.in_channels // layer.groups * layer.kernel * layer.kernel * layer.out_channels
    macs = 0 if layer.op == "gap" else weights * oh * ow
    params = 0 if layer.op == "gap" else weights
    return 1.0, macs, layer.in_channels * layer.in_hw[0] * layer.in_hw[1], out_elements, params


def layer_macs(layer: LayerSpec) -> float:
    """Multiply-accumulates of one row's op (SE excluded; 0 for ``gap``)."""
    return _row(layer)[1]


def layer_aggregates(layers: Sequence[LayerSpec]) -> np.ndarray:
    """``len(OPS) * len(AGGREGATES) + 4`` floats summarising a layer table."""
    per_op = np.zeros((len(OPS), len(AGGREGATES)))
    extra = np.zeros(4)
    for layer in layers:
        per_op[OPS.index(layer.op)] += _row(layer)
        if layer.se:
            extra[0] += 1
            extra[1] += 2 * layer.out_channels * layer.se_channels
        extra[2] += layer.residual
        extra[3] += layer.act == "hswish"
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

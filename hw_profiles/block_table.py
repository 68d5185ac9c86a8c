"""Vectorised costs of many MobileNetV3-family archs at once, from integer codes.

A ``MobileNetV3Space`` network is a fixed part (stem, first block, head: depends on the
resolution only) plus one unit per active block slot (depends on the resolution, that slot's kernel
and expand ratio). ``BlockCostTable(space, metric)`` evaluates ``metric(layers) -> float`` once per
unit configuration and combines the units of each arch with numpy: ``"sum"`` (``c + Σ (unit − c)``,
``c`` the metric's constant part, e.g. a runtime overhead) or ``"max"``. The rule is not assumed:
``BlockCostTable.fit`` tries both and keeps one only if it reproduces the exact metric on every
check arch (relative error ≤ 1e-9); otherwise it raises :class:`NotDecomposableError` and callers
use the exact per-arch path.

Only plain ``MobileNetV3Space``s are tabled: any other space, a quantized one (``<base>+q``) included,
raises :class:`NotDecomposableError` at once (per-block precisions put format conversions between
neighbouring blocks into the MCU's SRAM and latency, hw_profiles.mcu).

``evaluate(codes)`` takes an ``(n, len(space.params))`` matrix of option indices (``space.encode``
rows) and returns ``n`` floats; ``canonical_codes`` resets the settings of inactive slots.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from search_spaces import LayerSpec, MobileNetV3Space, NASError, QuantizedSpace

RULES = ("sum", "max")


class NotDecomposableError(NASError, ValueError):
    """The metric is not a per-block sum or max over this space; use the exact path."""


class SpaceCodes:
    """Column indices of a MobileNetV3Space's integer codes."""

    def __init__(self, space: MobileNetV3Space) -> None:
        if not isinstance(space, MobileNetV3Space):
            why = ""
            if isinstance(space, QuantizedSpace):  # flash would decompose; SRAM and latency would not
                why = ("; a quantization policy is not tabled: format conversions at block boundaries couple "
                       "neighbouring blocks")
            raise NotDecomposableError(f"block tables need a MobileNetV3Space, got {type(space).__name__} "
                                       f"{getattr(space, 'name', '')!r}{why}; use the exact per-arch path")
        self.space = space
        col = {name: i for i, name in enumerate(space.names)}
        self.n_slots = space.n_slots
        self.ks = np.array([col[f"ks_{i}"] for i in range(self.n_slots)])
        self.e = np.array([col[f"e_{i}"] for i in range(self.n_slots)])
        self.r = col["r"]
        self.stage_of = np.empty(self.n_slots, dtype=np.int64)
        self.position = np.empty(self.n_slots, dtype=np.int64)
        for s in range(len(space.stages)):
            for j, slot in enumerate(space.slot_range(s)):
                self.stage_of[slot], self.position[slot] = s, j
        self.d = np.array([col[f"d_{s}"] for s in range(len(space.stages))])
        self.depth_options = [np.asarray(space.params[c].options) for c in self.d]

    def active(self, codes: np.ndarray) -> np.ndarray:
        """``(n, n_slots)`` booleans: which block slots run."""
        depth = np.column_stack([opts[codes[:, c]] for opts, c in zip(self.depth_options, self.d)])
        return self.position[None, :] < depth[:, self.stage_of]

    def canonical(self, codes: np.ndarray) -> np.ndarray:
        """Codes with the kernel and expand settings of inactive slots reset to option 0 (the default)."""
        out = np.array(codes, dtype=np.int64, copy=True)
        off = ~self.active(out)
        out[:, self.ks] = np.where(off, 0, out[:, self.ks])
        out[:, self.e] = np.where(off, 0, out[:, self.e])
        return out


def _unit_rows(space: MobileNetV3Space, r: int, ks: int, e: int) -> tuple[list[LayerSpec], list[list[LayerSpec]]]:
    """Fixed rows and, per slot, the rows of an all-slots-active arch with every slot at (ks, e)."""
    values = {p.name: p.options[-1] for p in space.params}  # deepest: every slot active
    values.update({f"ks_{i}": ks for i in range(space.n_slots)})
    values.update({f"e_{i}": e for i in range(space.n_slots)})
    values["r"] = r
    rows = space.layers(space.parse(values))
    names = {}
    for s in range(len(space.stages)):
        for j, slot in enumerate(space.slot_range(s)):
            names[f"stage{s + 1}.block{j}"] = slot
    per_slot: list[list[LayerSpec]] = [[] for _ in range(space.n_slots)]
    fixed = []
    for row in rows:
        (per_slot[names[row.block]] if row.block in names else fixed).append(row)
    return fixed, per_slot


class BlockCostTable:
    def __init__(self, codes: SpaceCodes, rule: str, constant: float, fixed: np.ndarray, units: np.ndarray) -> None:
        self.codes, self.rule, self.constant = codes, rule, constant
        self.fixed = fixed  # (n_r,)
        self.units = units  # (n_slots, n_r, n_ks, n_e)

    @classmethod
    def fit(cls, space: MobileNetV3Space, metric: Callable[[Sequence[LayerSpec]], float], *,
            n_check: int = 64, seed: int = 0) -> "BlockCostTable":
        """Tabulate ``metric`` and check the combination rule against the exact metric."""
        codes = SpaceCodes(space)
        kss, es, rs = (space.params[codes.ks[0]].options, space.params[codes.e[0]].options,
                       space.params[codes.r].options)
        fixed = np.zeros(len(rs))
        units = np.zeros((space.n_slots, len(rs), len(kss), len(es)))
        pairs = None
        for ri, r in enumerate(rs):
            for ki, ks in enumerate(kss):
                for ei, e in enumerate(es):
                    fixed_rows, per_slot = _unit_rows(space, r, ks, e)
                    fixed[ri] = metric(fixed_rows)
                    for slot, rows in enumerate(per_slot):
                        units[slot, ri, ki, ei] = metric(rows)
                    if pairs is None:
                        pairs = (fixed_rows, per_slot[0])
        constant = metric(pairs[0]) + metric(pairs[1]) - metric(pairs[0] + pairs[1])
        rng = np.random.default_rng(seed)
        checks = [space.sample(rng) for _ in range(n_check)] + [space.largest(), space.smallest()]
        check_codes = np.vstack([space.encode(a) for a in checks])
        exact = np.array([metric(space.layers(a)) for a in checks])
        for rule in RULES:
            table = cls(codes, rule, constant if rule == "sum" else 0.0, fixed, units)
            got = table.evaluate(check_codes)
            if np.all(np.abs(got - exact) <= 1e-9 * np.maximum(np.abs(exact), 1.0)):
                return table
        raise NotDecomposableError("the metric is neither a per-block sum nor a per-block max over this space")

    def evaluate(self, codes: np.ndarray) -> np.ndarray:
        """One value per row of ``codes`` (option indices, ``space.encode`` layout)."""
        codes = np.asarray(codes, dtype=np.int64)
        c = self.codes
        r = codes[:, c.r]
        slots = np.arange(c.n_slots)
        per_slot = self.units[slots[None, :], r[:, None], codes[:, c.ks], codes[:, c.e]]  # (n, n_slots)
        active = c.active(codes)
        if self.rule == "sum":
            k = self.constant
            return self.fixed[r] + np.where(active, per_slot - k, 0.0).sum(axis=1)
        return np.maximum(self.fixed[r], np.where(active, per_slot, -np.inf).max(axis=1))

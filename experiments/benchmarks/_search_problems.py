"""The enumerable problems ``search_quality.py`` scores searchers on: every arch's objectives are known,
so the true Pareto front is too.

``synthetic``: six settings of a MobileNet-like family, ``depth`` 1-4 blocks per stage, ``width``
multiplier 0.35-1.5, ``kernel`` 3/5/7, ``expand`` 2/3/4/6, input ``resolution`` 96-224 in steps of 16
and ``se`` on/off (4·6·3·4·9·2 = 5,184 archs). Two minimised objectives that conflict:

- ``error`` = 1 − accuracy, with accuracy saturating in a capacity score
  (``0.93 − 0.45·exp(−capacity/2.2)``), where capacity grows with depth, log width, expansion and
  resolution, large kernels help only at high resolution (a 7×7 kernel at 96 px costs accuracy),
  SE helps narrow networks more than wide ones, plus a fixed pseudo-random term (σ = 0.004,
  seeded per arch) so the landscape is not smooth. Two interactions put the best archs on a narrow
  ridge: width should track resolution (compound scaling; ``−0.04·(log2(w/0.75) − log2(r/160))²``)
  and deep blocks with large expansion overfit (``−0.03·max(0, d·e − 12)/12``);
- ``log10 latency`` (ms) from a MAC-like count (resolution²·width²·depth·expansion·kernel-factor)
  with a per-layer fixed cost, an SE cost, and a penalty for widths that do not fill 8-lane
  vectors (0.35 and 1.25), so latency is not monotone in width. (Latency spans 2–1300 ms; the
  log keeps the fast end of the front from being flattened in the hypervolume.)

Neither is separable and the front (39 archs) mixes many settings. Searchers are offered no cheap
objective here (as before this benchmark had real accuracies): ``linas`` predicts both.

``tiny_mbv3``: the 2,916 subnets of ``tiny_mbv3_table.py``'s sub-space of a trained tiny_mbv3 supernet
(real BN-recalibrated validation top-1 on the embedded MNIST; why a 2-epoch supernet: that module). Objectives:
``error`` = 1 − top-1 (expensive: what a search pays for) and ``log10 MACs`` (exact and cheap: offered
to searchers that use a cheap hook, as a ``nas search`` job offers its analytic metrics).

``tiny_mbv3_mcu``: the same subnets with three objectives, ``error``, STM32F746 peak SRAM (KB) and ZCU104
latency (ms), the last two cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from nas.searchers import CheapObjectives, hypervolume, pareto_mask
from search_spaces import Choice, SearchSpace


@dataclass
class Problem:
    """An enumerated problem: ``F[i]`` are the minimised objectives of the arch with flat code ``i``
    (``np.ravel_multi_index`` of its codes); ``cheap`` the columns searchers may compute exactly."""

    name: str
    space: SearchSpace
    F: np.ndarray
    cheap: tuple[int, ...] = ()
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.true_index = np.flatnonzero(pareto_mask(self.F))
        front = self.F[self.true_index]
        self.ref = front.max(axis=0) + 0.1 * (front.max(axis=0) - front.min(axis=0))
        self.true_hv = hypervolume(front, self.ref)

    def flat_index(self, archs) -> np.ndarray:
        codes = np.array([self.space.encode(a) for a in archs])
        return np.ravel_multi_index(tuple(codes.T), self.space.cardinalities)

    def evaluate(self, archs):
        return self.F[self.flat_index(archs)], None

    def _codes_values(self, codes):
        """The cheap columns of code rows (the others NaN: a searcher must not see what it pays for)."""
        F = self.F[np.ravel_multi_index(tuple(np.asarray(codes).T), self.space.cardinalities)]
        hidden = [j for j in range(F.shape[1]) if j not in self.cheap]
        F[:, hidden] = np.nan
        return F, np.zeros((len(codes), 0))

    def cheap_objectives(self) -> CheapObjectives | None:
        """The hook a job offers (exact values of the cheap columns), or None without cheap columns."""
        if not self.cheap:
            return None
        return CheapObjectives(indices=self.cheap, evaluate_codes=self._codes_values, canonical_codes=lambda c: c,
                               evaluate=lambda archs: self._codes_values([self.space.encode(a) for a in archs]))

    def hv_ratio(self, F: np.ndarray) -> float:
        """HV of the non-dominated rows of ``F`` / the true front's (same reference point)."""
        return hypervolume(F[pareto_mask(F)], self.ref) / self.true_hv

    def describe(self) -> dict:
        return {"space_size": self.space.size, "true_front_size": int(len(self.true_index)),
                "reference_point": [round(float(v), 4) for v in self.ref], "true_hv": round(self.true_hv, 6),
                "cheap_columns": list(self.cheap), **self.source}


def synthetic() -> Problem:
    space = SearchSpace("proxy_nas", [
        Choice("depth", [1, 2, 3, 4]),
        Choice("width", [0.35, 0.5, 0.75, 1.0, 1.25, 1.5]),
        Choice("kernel", [3, 5, 7]),
        Choice("expand", [2, 3, 4, 6]),
        Choice("resolution", [96, 112, 128, 144, 160, 176, 192, 208, 224]),
        Choice("se", [False, True]),
    ])
    codes = np.array(np.unravel_index(np.arange(space.size), space.cardinalities)).T
    opts = [np.array(p.options, dtype=float) for p in space.params]
    d, w, k, e, r, se = (opts[i][codes[:, i]] for i in range(6))
    capacity = 0.55 * d + 1.2 * np.log2(w / 0.35) + 0.35 * e + 1.6 * np.log2(r / 96)
    kernel_gain = (k - 3) / 4 * (r - 128) / 96 * 0.6  # big kernels pay off only at high resolution
    acc = 0.93 - 0.45 * np.exp(-(capacity + kernel_gain) / 2.2)
    acc += se * 0.012 / w  # SE helps narrow nets most
    acc -= 0.04 * (np.log2(w / 0.75) - np.log2(r / 160)) ** 2  # compound scaling: width should track resolution
    acc -= 0.03 * np.clip(d * e - 12, 0, None) / 12  # deep and wide-expanding blocks overfit
    error = 1.0 - acc + np.random.default_rng(20261122).normal(0.0, 0.004, space.size)
    macs = (r / 224) ** 2 * w**2 * d * e * (1 + (k**2 - 9) / 40)
    lanes = np.where(np.isin(w, [0.35, 1.25]), 1.25, 1.0)  # channels that do not fill 8-lane vectors
    latency = 12.0 * macs * lanes + 0.6 * d + se * 0.35 * d * (r / 224) + 1.0
    return Problem("synthetic", space, np.column_stack([error, np.log10(latency)]),
                   source={"objectives": ["error", "log10 latency_ms"]})


def _table(name: str, columns: tuple[str, ...], cheap: tuple[int, ...]) -> Problem:
    from tiny_mbv3_table import SUBSPACE, TABLE

    table = json.loads(TABLE.read_text())
    if len(table["top1"]) != SUBSPACE.size:
        raise SystemExit(f"{TABLE}: {len(table['top1'])} subnets, the sub-space has {SUBSPACE.size}; regenerate it "
                         "(python experiments/benchmarks/tiny_mbv3_table.py --checkpoint ...)")
    values = {"error": 1.0 - np.asarray(table["top1"]), "log10 macs": np.log10(table["macs"]),
              "stm32f746.peak_sram_kb": np.asarray(table["stm32f746.peak_sram_kb"]),
              "zcu104.latency_ms": np.asarray(table["zcu104.latency_ms"])}
    return Problem(name, SUBSPACE, np.column_stack([values[c] for c in columns]), cheap,
                   source={"objectives": list(columns), "table": TABLE.name,
                           "checkpoint_sha256": table["checkpoint_sha256"][:16], "data": table["data"]})


PROBLEMS = {
    "synthetic": synthetic,
    "tiny_mbv3": lambda: _table("tiny_mbv3", ("error", "log10 macs"), (1,)),
    "tiny_mbv3_mcu": lambda: _table("tiny_mbv3_mcu", ("error", "stm32f746.peak_sram_kb", "zcu104.latency_ms"),
                                    (1, 2)),
}

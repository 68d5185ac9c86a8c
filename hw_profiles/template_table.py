"""FPGA costs of (network, accelerator template) pairs of an ``AcceleratorSpace``: exact and vectorised.

:class:`TemplateModels` is the exact path: one ``FpgaCostModel`` per template of the space's device
(cached), so a joint arch's metrics are ``model_for(space.template(arch)).metrics(space.layers(arch))``,
tagged ``<device>@<version>+<changed knobs>`` (the device's own template keeps the plain tag).

:class:`TemplateBlockTable` is the fast path for search, like ``hw_profiles.block_table`` for one
device: the FPGA model is not a sum of standalone blocks (a row's DDR traffic depends on whether it
touches the network's input or output), but it *is* a sum of rows costed in context, and no row of
a block slot ever touches the network's edges. So every metric is ``fixed[τ, r] + Σ_active-slots
unit[τ, slot, r, ks, e]`` over template τ, where a unit is a slot's rows costed as interior rows,
evaluated for every template at once with the array form of the row formulas
(``hw_profiles.fpga_rows``). ``fit`` checks the sum against the exact model on sample archs
(error ≤ 1e-9 relative, or absolute for values below 1) and raises ``NotDecomposableError`` otherwise (e.g. a quantized base space,
whose format conversions couple neighbouring rows); callers then use the exact path.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from hw_profiles.analytic import layer_macs
from hw_profiles.block_table import NotDecomposableError, SpaceCodes, _unit_rows
from hw_profiles.cost_model import cost_model_for
from hw_profiles.fpga import FpgaCostModel
from hw_profiles.fpga_rows import bram_count, dsp_count, row_cost, template_of
from hw_profiles.metric import Metric
from hw_profiles.profile import get_profile
from search_spaces import ArchConfig, LayerSpec, MobileNetV3Space
from search_spaces.accelerator import AcceleratorSpace

_CACHE_LIMIT = 8192
TABLED = ("latency_ms", "energy_mj", "dsp", "bram18k", "feasible")


class TemplateModels:
    """The exact FPGA model of every template of ``space`` (cached per template)."""

    def __init__(self, space: AcceleratorSpace, model: FpgaCostModel | None = None) -> None:
        if not isinstance(space, AcceleratorSpace):
            raise ValueError(f"TemplateModels needs an AcceleratorSpace, got {type(space).__name__}")
        self.space = space
        self.model = model or cost_model_for(get_profile(space.device))
        if not isinstance(self.model, FpgaCostModel):
            raise ValueError(f"{space.device!r} is not an fpga profile; its accelerator cannot be searched")
        self._models: dict[tuple, FpgaCostModel] = {}

    def model_for(self, template: Mapping[str, object]) -> FpgaCostModel:
        """The model of ``template`` (knob -> value); knobs equal to the device's own are not tagged."""
        spec = self.model.spec
        changes = {k: v for k, v in template.items() if getattr(spec, k) != v}
        key = tuple(sorted(changes.items()))
        model = self._models.get(key)
        if model is None:
            if len(self._models) >= _CACHE_LIMIT:
                self._models.clear()
            model = self._models[key] = self.model.with_template(**changes) if changes else self.model
        return model

    def metrics(self, arch: ArchConfig) -> dict[str, Metric]:
        """Every FPGA metric of the joint ``arch`` on its own template."""
        arch = self.space.validate(arch)
        return self.model_for(self.space.template(arch)).metrics(self.space.layers(arch))


class TemplateBlockTable:
    """One FPGA metric of every joint arch of ``space`` from integer codes (module doc)."""

    def __init__(self, space: AcceleratorSpace, metric: str, fixed: np.ndarray, units: np.ndarray | None) -> None:
        self.space, self.metric = space, metric
        self.codes = SpaceCodes(space.base)
        self.fixed = fixed  # (T, n_r), or (T,) for a template-only metric
        self.units = units  # (T, n_slots, n_r, n_ks, n_e), or None
        n_base = len(space.base.params)
        self._hw_cols = np.arange(n_base, len(space.params))
        radix = [len(options) for options in space.knobs.values()]
        self._weights = np.array([int(np.prod(radix[i + 1:])) for i in range(len(radix))], dtype=np.int64)

    # ------------------------------------------------------------------ building
    @classmethod
    def fit(cls, space: AcceleratorSpace, metric: str, *, models: TemplateModels | None = None,
            n_check: int = 64, seed: int = 0) -> "TemplateBlockTable":
        """Tabulate ``metric`` (one of :data:`TABLED`) for every template and check it (module doc)."""
        if metric not in TABLED:
            raise NotDecomposableError(f"FPGA metric {metric!r} is not tabled; tabled: {', '.join(TABLED)}")
        if not isinstance(space.base, MobileNetV3Space):
            raise NotDecomposableError(f"the joint table needs a plain MobileNetV3Space network part, got "
                                       f"{space.base.name!r}; use the exact per-template path")
        models = models or TemplateModels(space)
        spec = models.model.spec
        templates = space.templates()
        arrays = {k: np.array([t[k] for t in templates]) for k in space.knobs}
        full = {name: arrays.get(name, np.full(len(templates), getattr(spec, name))) for name in (
            "pe_rows", "pe_cols", "bit_width", "input_buffer_bytes", "weight_buffer_bytes", "output_buffer_bytes")}
        dsp = dsp_count(full["pe_rows"], full["pe_cols"], full["bit_width"], spec.macs_per_dsp)
        bram = bram_count(full["input_buffer_bytes"], full["weight_buffer_bytes"], full["output_buffer_bytes"])
        if metric in ("dsp", "bram18k", "feasible"):
            values = {"dsp": dsp, "bram18k": bram,
                      "feasible": ((dsp <= spec.dsp_total) & (bram <= spec.bram18k_total)).astype(np.float64)}
            table = cls(space, metric, np.asarray(values[metric], dtype=np.float64), None)
        else:
            table = cls(space, metric, *_row_sums(space.base, _RowValue(spec, arrays, metric)))
        table._check(models, n_check, seed)
        return table

    def _check(self, models: TemplateModels, n_check: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        space = self.space
        archs = [space.sample(rng) for _ in range(n_check)] + [space.largest(), space.smallest()]
        exact = np.array([models.metrics(a)[self.metric].value for a in archs])
        got = self.evaluate(np.vstack([space.encode(a) for a in archs]))
        if not np.all(np.abs(got - exact) <= 1e-9 * np.maximum(np.abs(exact), 1.0)):
            worst = int(np.argmax(np.abs(got - exact)))
            raise NotDecomposableError(f"the joint table of {self.metric} misses the exact model on "
                                       f"{archs[worst].arch_id}: {got[worst]!r} vs {exact[worst]!r}")

    # ------------------------------------------------------------------ evaluating
    def template_index(self, codes: np.ndarray) -> np.ndarray:
        """The row of ``space.templates()`` each code row's hw settings pick."""
        return np.asarray(codes, dtype=np.int64)[:, self._hw_cols] @ self._weights

    def evaluate(self, codes: np.ndarray) -> np.ndarray:
        """One value per row of joint ``codes`` (``space.encode`` layout)."""
        codes = np.asarray(codes, dtype=np.int64)
        tau = self.template_index(codes)
        if self.units is None:
            return self.fixed[tau]
        c = self.codes
        r = codes[:, c.r]
        slots = np.arange(c.n_slots)
        per_slot = self.units[tau[:, None], slots[None, :], r[:, None], codes[:, c.ks], codes[:, c.e]]
        return self.fixed[tau, r] + np.where(c.active(codes), per_slot, 0.0).sum(axis=1)

    def over_templates(self, network_codes: np.ndarray) -> np.ndarray:
        """``(T,)``: the metric of one network (its base codes) on every template, in ``templates()`` order."""
        if self.units is None:
            return self.fixed.copy()
        codes = np.asarray(network_codes, dtype=np.int64)[None, :]
        c = self.codes
        r = int(codes[0, c.r])
        active = np.flatnonzero(c.active(codes)[0])
        per_slot = self.units[:, active, r, codes[0, c.ks[active]], codes[0, c.e[active]]]
        return self.fixed[:, r] + per_slot.sum(axis=1)


class _RowValue:
    """A metric's per-row contribution over every template (cached per distinct row and edge)."""

    def __init__(self, spec, arrays: Mapping[str, np.ndarray], metric: str) -> None:
        self.spec, self.metric = spec, metric
        self.template = template_of(spec, **arrays)
        n_templates = len(next(iter(arrays.values())))
        self.ms_per_cycle = 1e3 / np.broadcast_to(np.asarray(arrays.get("clock_hz", spec.clock_hz), dtype=np.float64),
                                                  (n_templates,))
        self._cache: dict[tuple, np.ndarray] = {}

    def __call__(self, row: LayerSpec, edge: int) -> np.ndarray:
        key = (row, edge)
        value = self._cache.get(key)
        if value is None:
            _, _, cycles, dram, passes = row_cost(row, self.template, edge)
            ms = cycles * self.ms_per_cycle
            if self.metric == "latency_ms":
                value = ms
            else:
                s = self.spec
                value = (layer_macs(row) * passes * s.energy_pj_per_mac + dram * s.energy_pj_per_dram_byte) * 1e-9 \
                    + s.static_power_w * ms
            value = self._cache[key] = np.asarray(value, dtype=np.float64)
        return value


def _row_sums(space: MobileNetV3Space, value: _RowValue) -> tuple[np.ndarray, np.ndarray]:
    """``fixed (T, n_r)`` and ``units (T, n_slots, n_r, n_ks, n_e)``: sums of per-row values in context."""
    codes = SpaceCodes(space)
    kss, es, rs = (space.params[codes.ks[0]].options, space.params[codes.e[0]].options,
                   space.params[codes.r].options)
    n_t = len(value.ms_per_cycle)
    fixed = np.zeros((n_t, len(rs)))
    units = np.zeros((n_t, space.n_slots, len(rs), len(kss), len(es)))
    for ri, r in enumerate(rs):
        for ki, ks in enumerate(kss):
            for ei, e in enumerate(es):
                fixed_rows, per_slot = _unit_rows(space, r, ks, e)
                if ki == 0 and ei == 0:
                    fixed[:, ri] = _sum(value, fixed_rows, edges=True)
                for slot, rows in enumerate(per_slot):
                    units[:, slot, ri, ki, ei] = _sum(value, rows, edges=False)
    return fixed, units


def _sum(value: _RowValue, rows: Sequence[LayerSpec], *, edges: bool) -> np.ndarray:
    """Σ of the rows' values; with ``edges`` the first row reads the network input and the last writes
    the network output (the fixed part holds both ends of every network)."""
    last = len(rows) - 1
    total = 0.0
    for i, row in enumerate(rows):
        edge = ((i == 0) | ((i == last) << 1)) if edges else 0
        total = total + value(row, edge)
    return total

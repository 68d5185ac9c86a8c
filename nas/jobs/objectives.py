"""Objectives and constraints of a search, and the built-in metrics they can name.

Contract:
* ``Objective(name, fn, direction=)``: ``fn`` is a callable ``ArchConfig -> float | Metric`` (or, with
  ``batch=True``, ``list[ArchConfig] -> list[float | Metric]``), or the name of a built-in metric:
  ``"macs"``, ``"params"`` or ``"PROFILE.METRIC"`` such as ``"stm32f746.peak_sram_kb"``,
  ``"zcu104.latency_ms"`` or ``"host-cpu.latency_ms"`` (see :class:`MetricCatalog`); an fpga profile's
  ``zigzag_latency_ms``/``zigzag_energy_mj`` are ZigZag's estimates of the same accelerator (expensive).
  Built-in analytic metrics are *cheap*; user functions and measured latency are *expensive* unless
  ``cheap=True``. A user function's floats are tagged with ``source`` (default ``"measured"``) and
  ``profile="user"``; return a :class:`~hw_profiles.Metric` to say more.
* ``Constraint(metric, op, bound)`` with ``op`` in ``<=``/``>=``: ``violation(value)`` is ``<= 0``
  when satisfied (``value - bound`` or ``bound - value``). ``metric`` is a built-in metric name or the
  name of an objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from hw_profiles import Metric, cost_model_for, get_profile, macs, params
from hw_profiles.cost_model import CostModel
from search_spaces import AcceleratorSpace, ArchConfig, NASError, SearchSpace
from search_spaces.multitask import MultiTaskSpace

DIRECTIONS = ("minimize", "maximize")
OPS = ("<=", ">=")
ANALYTIC = "analytic@1"


class ObjectiveError(NASError, ValueError):
    """An objective, constraint or metric name is unusable; the message names it."""


@dataclass(frozen=True)
class Objective:
    name: str
    fn: Callable | str
    direction: str = "minimize"
    batch: bool = False
    cheap: bool | None = None
    source: str = "measured"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "," in self.name:
            raise ObjectiveError(f"objective name must be a non-empty string without commas, got {self.name!r}")
        if self.direction not in DIRECTIONS:
            raise ObjectiveError(f"objective {self.name!r}: direction must be one of {list(DIRECTIONS)}, "
                                 f"got {self.direction!r}")
        if not (callable(self.fn) or (isinstance(self.fn, str) and self.fn)):
            raise ObjectiveError(f"objective {self.name!r}: fn must be a callable or a metric name, got {self.fn!r}")
        if self.source not in ("measured", "estimated", "predicted"):
            raise ObjectiveError(f"objective {self.name!r}: source must be measured, estimated or predicted, "
                                 f"got {self.source!r}")

    @property
    def sign(self) -> float:
        """+1 for minimise, -1 for maximise: ``sign * value`` is always minimised."""
        return 1.0 if self.direction == "minimize" else -1.0


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ObjectiveError(f"constraint metric must be a non-empty name, got {self.metric!r}")
        if self.op not in OPS:
            raise ObjectiveError(f"constraint on {self.metric!r}: op must be one of {list(OPS)}, got {self.op!r}")
        if isinstance(self.bound, bool) or not isinstance(self.bound, (int, float)) or not math.isfinite(self.bound):
            raise ObjectiveError(f"constraint on {self.metric!r}: bound must be a finite number, got {self.bound!r}")

    @property
    def label(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def violation(self, value: float) -> float:
        """``<= 0`` when satisfied; NaN stays NaN (unknown counts as violated by callers)."""
        return value - self.bound if self.op == "<=" else self.bound - value


def _as_metric(value, objective: Objective) -> Metric:
    if isinstance(value, Metric):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ObjectiveError(f"objective {objective.name!r} returned {value!r}; expected a number or a Metric")
    spread = 0.0 if objective.source == "measured" else None
    return Metric(value=float(value), unit="", source=objective.source, profile="user", spread=spread)


CPU_METRICS = ("latency_ms", "tvm_latency_ms")
ZIGZAG_METRICS = ("zigzag_latency_ms", "zigzag_energy_mj")
"""An fpga profile's cross-check by the external engine ZigZag: estimated, but expensive (run after screening)."""


class MetricCatalog:
    """Resolves built-in metric names for archs of one space, with provenance.

    ``latency_models`` maps a cpu profile name to a fitted latency model (``nas.profiling.latency_model``):
    its ``latency_ms`` is then *predicted* (cheap). Otherwise a cpu profile's metrics are *measured*
    (expensive) through ``measure``, which maps a metric name (``"host-cpu.latency_ms"``,
    ``"host-cpu.tvm_latency_ms"``: the TVM-compiled subnet) to a callable
    ``ArchConfig -> {metric: Metric}``. ``cheap`` maps further metric names (no dot, e.g.
    ``predicted_accuracy_drop``) to cheap batch callables ``list[ArchConfig] -> list[Metric]``.
    """

    def __init__(self, space: SearchSpace, *, latency_models: Mapping[str, object] | None = None,
                 measure: Mapping[str, Callable] | None = None, cheap: Mapping[str, Callable] | None = None) -> None:
        self.space = space
        self.latency_models = dict(latency_models or {})
        self.measure = dict(measure or {})
        self.cheap = dict(cheap or {})
        self._models: dict[str, CostModel] = {}
        self._tables: dict[str, object] = {}
        self._templates = None  # hw_profiles.template_table.TemplateModels of a co-design space
        if isinstance(space, MultiTaskSpace):  # its makespan, energy and shared resources (nas.jobs.multitask)
            from nas.jobs.multitask import multitask_metrics

            self.cheap = {**multitask_metrics(space), **self.cheap}

    def on_template(self, device: str) -> bool:
        """Whether ``device``'s metrics depend on each arch's own accelerator template (the device
        of a co-design space, ``<space>+hw(<device>)``)."""
        return isinstance(self.space, AcceleratorSpace) and device == self.space.device

    def device_constraints(self) -> list["Constraint"]:
        """The device bounds of a co-design space: its accelerator's DSP and BRAM use within the
        device's (hard, cheap, screened before anything expensive); for a multi-task space the sums
        of its sub-accelerators'; none for another space."""
        if isinstance(self.space, MultiTaskSpace):
            from nas.jobs.multitask import multitask_constraints

            return multitask_constraints(self.space)
        if not isinstance(self.space, AcceleratorSpace):
            return []
        device, spec = self.space.device, self._model(self.space.device).spec
        return [Constraint(f"{device}.dsp", "<=", float(spec.dsp_total)),
                Constraint(f"{device}.bram18k", "<=", float(spec.bram18k_total))]

    def templates(self):
        """The exact per-template FPGA models of a co-design space (``TemplateModels``)."""
        from hw_profiles.template_table import TemplateModels

        if self._templates is None:
            self._templates = TemplateModels(self.space, self._model(self.space.device))
        return self._templates

    def check(self, name: str) -> None:
        """``ObjectiveError`` naming the problem unless ``name`` resolves."""
        if name in ("macs", "params") or name in self.cheap:
            return
        device, _, metric = name.rpartition(".")
        if not device:
            raise ObjectiveError(f"unknown metric {name!r}; use macs, params or PROFILE.METRIC such as "
                                 "stm32f746.peak_sram_kb, zcu104.latency_ms or host-cpu.latency_ms")
        profile = get_profile(device)  # UnknownProfileError lists the profiles
        if profile.kind == "cpu":
            if metric not in CPU_METRICS:
                raise ObjectiveError(f"{device} is a cpu profile: its metrics are {', '.join(CPU_METRICS)}, "
                                     f"got {metric!r}")
            if not self._predicted(name) and name not in self.measure:
                raise ObjectiveError(f"{name} needs a latency model (nas profile --device {device}) or a "
                                     "measuring function")
            return
        if profile.kind == "fpga" and metric in ZIGZAG_METRICS:
            self.measure.setdefault(name, self._zigzag(device))
            return
        known = self._model(device).metrics(self.space.layers(self.space.sample(np.random.default_rng(0))))
        if metric not in known:
            extra = list(ZIGZAG_METRICS) if profile.kind == "fpga" else []
            raise ObjectiveError(f"{device} has no metric {metric!r}; it has {sorted(known) + extra}")

    def _zigzag(self, device: str) -> Callable:
        """``arch -> {zigzag_latency_ms, zigzag_energy_mj}``: ZigZag's estimate of the arch on its own
        accelerator (expensive: ~1-2 s per network; ``hw_profiles.zigzag_engine``)."""
        from hw_profiles.zigzag_engine import zigzag_metrics, zigzag_version

        zigzag_version()  # ZigZagUnavailableError (one line, how to install) before any search runs

        def estimate(arch: ArchConfig) -> dict[str, Metric]:
            model = self.templates().model_for(self.space.template(arch)) if self.on_template(device) \
                else self._model(device)
            got = zigzag_metrics(self.space.layers(arch), model.spec, profile_ref=model.profile.ref)
            return {"zigzag_latency_ms": got["latency_ms"], "zigzag_energy_mj": got["energy_mj"]}

        return estimate

    def _predicted(self, name: str) -> bool:
        device, _, metric = name.rpartition(".")
        return metric == "latency_ms" and device in self.latency_models

    def is_cheap(self, name: str) -> bool:
        return self._predicted(name) or name not in self.measure

    def _model(self, device: str) -> CostModel:
        if device not in self._models:
            self._models[device] = cost_model_for(get_profile(device))
        return self._models[device]

    def layer_metric(self, name: str) -> Callable | None:
        """``layers -> float`` for a built-in metric computed from the layer table (None for
        measured or predicted latency, which needs the arch)."""
        if name == "macs":
            return lambda layers: float(macs(layers))
        if name == "params":
            return lambda layers: float(params(layers))
        if name in self.cheap:
            return None
        device, _, metric = name.rpartition(".")
        if not metric or self._predicted(name) or name in self.measure or self.on_template(device):
            return None
        model = self._model(device)
        return lambda layers: model.metrics(layers)[metric].value

    def block_table(self, name: str):
        """A vectorised :class:`~hw_profiles.block_table.BlockCostTable` for ``name``, or None when the
        space or the metric does not decompose per block (callers then use :meth:`resolve`)."""
        from hw_profiles.block_table import BlockCostTable, NotDecomposableError

        if name not in self._tables:
            device, _, metric = name.rpartition(".")
            fn = self.layer_metric(name)
            try:
                if device and self.on_template(device):
                    from hw_profiles.template_table import TemplateBlockTable

                    self._tables[name] = TemplateBlockTable.fit(self.space, metric, models=self.templates())
                elif fn and isinstance(self.space, AcceleratorSpace):  # the network part's columns
                    self._tables[name] = _NetworkColumns(BlockCostTable.fit(self.space.base, fn),
                                                         len(self.space.base.params))
                elif fn and device and self._model(device).kind == "fpga":
                    self._tables[name] = self._pinned_fpga_table(device, metric)
                else:
                    self._tables[name] = BlockCostTable.fit(self.space, fn) if fn else None
            except NotDecomposableError:
                self._tables[name] = None
        return self._tables[name]

    def _pinned_fpga_table(self, device: str, metric: str):
        """An FPGA metric of a network space on the device's own template: the co-design table with
        one template (the FPGA model sums rows in context, not standalone blocks)."""
        from hw_profiles.template_table import TemplateBlockTable, TemplateModels

        model = self._model(device)
        dataflow = model.spec.dataflow
        pinned = AcceleratorSpace(self.space, device=device, knobs={"dataflow": (dataflow,)},
                                  default={"dataflow": dataflow})
        return _NetworkColumns(TemplateBlockTable.fit(pinned, metric, models=TemplateModels(pinned, model)),
                               len(self.space.params), pad=1)

    def resolve(self, name: str, archs: Sequence[ArchConfig]) -> list[Metric]:
        """One ``Metric`` per arch for the built-in metric ``name``."""
        if name in self.cheap:
            return list(self.cheap[name](list(archs)))
        if name in ("macs", "params"):
            count = macs if name == "macs" else params
            unit = "MACs" if name == "macs" else "params"
            return [Metric(value=float(count(self.space.layers(a))), unit=unit, source="estimated", profile=ANALYTIC)
                    for a in archs]
        device, _, metric = name.rpartition(".")
        if self._predicted(name):
            return self.latency_models[device].predict(list(archs))
        if name in self.measure:
            return [self.measure[name](a)[metric] for a in archs]
        if self.on_template(device):
            return [self.templates().metrics(a)[metric] for a in archs]
        model = self._model(device)
        return [model.metrics(self.space.layers(a))[metric] for a in archs]


class _NetworkColumns:
    """A block table read from the first ``n`` columns of the codes: a network space's table under
    co-design codes (other devices do not depend on the accelerator), or a one-template co-design
    table under network codes (``pad``)."""

    def __init__(self, table, n: int, *, pad: int = 0) -> None:
        self.table, self.n, self.pad = table, n, pad  # pad: zero columns appended (a pinned template)

    def evaluate(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)[:, : self.n]
        if self.pad:
            codes = np.hstack([codes, np.zeros((len(codes), self.pad), dtype=codes.dtype)])
        return self.table.evaluate(codes)

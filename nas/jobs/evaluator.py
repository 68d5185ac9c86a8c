"""Evaluate one architecture for a job: cheap checks first, expensive objectives only if they pass.

Contract: ``Evaluator(space, objectives, constraints, catalog)`` validates every name up front
(``ObjectiveError`` naming the bad one). ``screen(archs)`` computes, for each arch, the cheap
metrics (built-in analytic metrics and objectives marked cheap) and the violations of the
constraints that only need them; an arch violating one is *rejected* before anything expensive
runs. ``complete(outcomes)`` fills the screened, non-rejected outcomes in place with the expensive
metrics and every constraint, sets each one's ``values`` (the objectives in order, in their natural
units and directions) and returns them. Batch objectives (``batch=True``) receive lists. For a
co-design space (``<space>+hw(<device>)``) the device's DSP and BRAM bounds are added to the
constraints (``MetricCatalog.device_constraints``): an accelerator the device cannot hold is rejected
at screening, with how far over in its violations.
``cheap_objectives()`` offers the cheap objectives and constraints to searchers that model the
others (``linas``), vectorised over integer codes where every one of them has a block table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from hw_profiles import Metric
from nas.jobs.objectives import Constraint, MetricCatalog, Objective, ObjectiveError, _as_metric
from nas.searchers import CheapObjectives
from search_spaces import AcceleratorSpace, ArchConfig, SearchSpace


@dataclass
class Outcome:
    """Metrics by name, constraint violations by label, objective values (None until complete)."""

    arch: ArchConfig
    metrics: dict[str, Metric] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    values: list[float] | None = None
    rejected: bool = False

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.constraints.values())


class Evaluator:
    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (),
                 *, catalog: MetricCatalog | None = None) -> None:
        objectives, constraints = list(objectives), list(constraints)
        if not objectives:
            raise ObjectiveError("a search needs at least one objective")
        names = [o.name for o in objectives]
        if len(set(names)) != len(names):
            raise ObjectiveError(f"objective names must be unique, got {names}")
        for c in constraints:
            if not isinstance(c, Constraint):
                raise ObjectiveError(f"constraints must be nas.Constraint, got {c!r}")
        self.catalog = catalog or MetricCatalog(space)
        given = {c.label for c in constraints}
        constraints += [c for c in self.catalog.device_constraints() if c.label not in given]
        self.space, self.objectives, self.constraints = space, objectives, constraints
        by_name = {o.name: o for o in objectives}
        for o in objectives:
            if isinstance(o.fn, str):
                self.catalog.check(o.fn)
        for c in constraints:
            if c.metric not in by_name:
                self.catalog.check(c.metric)
        self._by_name = by_name

    def is_cheap(self, name: str) -> bool:
        """Whether the metric or objective ``name`` is cheap."""
        objective = self._by_name.get(name)
        if objective is None:
            return self.catalog.is_cheap(name)
        if objective.cheap is not None:
            return objective.cheap
        return isinstance(objective.fn, str) and self.catalog.is_cheap(objective.fn)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def _compute(self, name: str, archs: list[ArchConfig]) -> list[Metric]:
        objective = self._by_name.get(name)
        if objective is None:
            return self.catalog.resolve(name, archs)
        if isinstance(objective.fn, str):
            return self.catalog.resolve(objective.fn, archs)
        if objective.batch:
            values = list(objective.fn(list(archs)))
            if len(values) != len(archs):
                raise ObjectiveError(f"batch objective {name!r} returned {len(values)} values for {len(archs)} archs")
        else:
            values = [objective.fn(a) for a in archs]
        return [_as_metric(v, objective) for v in values]

    def _fill(self, outcomes: list[Outcome], names: Sequence[str]) -> None:
        for name in names:
            todo = [o for o in outcomes if name not in o.metrics]
            if todo:
                for outcome, metric in zip(todo, self._compute(name, [o.arch for o in todo])):
                    outcome.metrics[name] = metric

    def _constrain(self, outcome: Outcome, constraints: Sequence[Constraint]) -> None:
        for c in constraints:
            value = outcome.metrics[c.metric].value
            outcome.constraints[c.label] = math.inf if math.isnan(value) else c.violation(value)

    def screen(self, archs: Sequence[ArchConfig]) -> list[Outcome]:
        """Cheap metrics and cheap constraints of every arch; ``rejected`` when one is violated."""
        outcomes = [Outcome(arch=self.space.validate(a)) for a in archs]
        cheap_constraints = [c for c in self.constraints if self.is_cheap(c.metric)]
        self._fill(outcomes, [c.metric for c in cheap_constraints] + [n for n in self.names if self.is_cheap(n)])
        for outcome in outcomes:
            self._constrain(outcome, cheap_constraints)
            outcome.rejected = not outcome.feasible
        return outcomes

    def complete(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Fill the non-rejected ``outcomes`` of :meth:`screen` in place (expensive metrics, every
        constraint, ``values``) and return the list of those filled ones only; rejected ones are
        skipped, left as they are and not returned."""
        outcomes = [o for o in outcomes if not o.rejected]
        self._fill(outcomes, self.names + [c.metric for c in self.constraints])
        for outcome in outcomes:
            self._constrain(outcome, self.constraints)
            outcome.values = [outcome.metrics[n].value for n in self.names]
        return outcomes

    # ----------------------------------------------------- offered to searchers
    def cheap_objectives(self) -> CheapObjectives:
        """The cheap objective columns (minimised) and cheap constraints, for searchers that predict
        the others; ``evaluate_codes`` is vectorised when every one of them has a block table."""
        cheap = tuple(j for j, o in enumerate(self.objectives) if self.is_cheap(o.name))

        def evaluate(archs: Sequence[ArchConfig]):
            outcomes = self.screen(archs)
            F = np.full((len(archs), len(self.objectives)), np.nan)
            for j in cheap:
                o = self.objectives[j]
                F[:, j] = [o.sign * out.metrics[o.name].value for out in outcomes]
            G = np.array([[out.constraints.get(c.label, 0.0) for c in self.constraints] for out in outcomes],
                         dtype=np.float64).reshape(len(archs), len(self.constraints))
            return F, G

        fast = self._cheap_codes(cheap) if len(cheap) < len(self.objectives) else None
        canonical = _canonical_codes(self.space) if fast else None
        if canonical is None:  # a space without block tables (nothing cheap to table): the per-arch path
            fast = None
        # a co-design space's user/accuracy functions see the network; named device metrics both halves
        network_only = tuple(j for j, o in enumerate(self.objectives) if j not in cheap and not isinstance(o.fn, str)) \
            if isinstance(self.space, AcceleratorSpace) else ()
        return CheapObjectives(indices=cheap, evaluate=evaluate, evaluate_codes=fast, canonical_codes=canonical,
                               network_only=network_only)

    def _block_table(self, name: str):
        objective = self._by_name.get(name)
        metric = name if objective is None else objective.fn
        return self.catalog.block_table(metric) if isinstance(metric, str) else None

    def _cheap_codes(self, cheap: Sequence[int]):
        """A vectorised ``codes -> (F, G)`` when every cheap objective and constraint has a block table."""
        objectives, constraints = self.objectives, self.constraints
        cols = {j: self._block_table(objectives[j].name) for j in cheap}
        cons = [(i, c, self._block_table(c.metric)) for i, c in enumerate(constraints) if self.is_cheap(c.metric)]
        if any(t is None for t in cols.values()) or any(t is None for _, _, t in cons):
            return None

        def cheap_codes(codes: np.ndarray):
            F = np.full((len(codes), len(objectives)), np.nan)
            for j, t in cols.items():
                F[:, j] = objectives[j].sign * t.evaluate(codes)
            G = np.zeros((len(codes), len(constraints)))
            for i, c, t in cons:
                G[:, i] = c.violation(t.evaluate(codes))
            return F, G

        return cheap_codes


def _canonical_codes(space: SearchSpace):
    """Raw code rows -> canonical ones, vectorised (a co-design space: its network columns); None for
    a space block tables do not decompose (a user space)."""
    from hw_profiles.block_table import NotDecomposableError, SpaceCodes

    try:
        network = SpaceCodes(space.base if isinstance(space, AcceleratorSpace) else space).canonical
    except NotDecomposableError:
        return None
    if not isinstance(space, AcceleratorSpace):
        return network
    n = len(space.base.params)

    def canonical(codes: np.ndarray) -> np.ndarray:
        out = np.array(codes, dtype=np.int64, copy=True)
        out[:, :n] = network(out[:, :n])
        return out

    return canonical

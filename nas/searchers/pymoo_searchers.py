"""pymoo adapters: ``nsga2``, ``nsga3``, ``agemoea2``, ``smsemoa`` and ``moead`` behind ``Searcher``.

They drive pymoo's own ask/tell API (``algorithm.setup(problem, seed=...)``,
``pop = algorithm.ask()``, values set through ``StaticProblem`` + ``Evaluator``,
``algorithm.tell(infills=pop)``); no evolutionary step is re-implemented here.

- **Encoding**: one integer variable per setting with more than one option (its option index,
  bounds ``0..len-1``); single-option settings are fixed at 0. Operators follow pymoo's integer
  recipe: ``IntegerRandomSampling``, then ``SBX``/``PM`` on floats with ``RoundingRepair``
  (``eta=3`` so a mutation can jump several options). Codes are decoded and canonicalised, so
  two codes that build one network are one arch.
- **Buffering**: pymoo proposes whole generations; ``ask(n)`` wants any ``n``. Proposals wait
  in a queue and are handed out in order across ``ask`` calls. The ones handed out (or matched
  to a known arch) are told to pymoo as soon as all of them have values, usually at the next
  ``tell``; the rest of the generation stays queued for later asks and is told with a later
  batch. For the genetic algorithms each tell is a set of offspring that ``_advance`` merges
  into the population and cuts back to its size, so batches smaller than the population give
  a steady-state flavour of the same algorithm. When the queue runs dry while handed-out
  proposals still wait for values (``n`` larger than what is queued), the adapter asks pymoo
  for more offspring of the same parents. pymoo's first tell waits for a whole initial
  population; initial samples still queued after it are dropped (mating takes over).
- **Dedup**: a proposal whose ``arch_id`` was told already is not asked again; pymoo gets the
  known values (a free evaluation). One that is pending waits for its values. After
  ``max_stalls`` consecutive pymoo segments that yield no unseen arch, the base class fills
  the rest with unseen random samples; until pymoo yields one again, later asks probe it with
  one segment only (mating in a nearly exhausted space is slow).
- **Archs pymoo did not propose** (those random fill-ins, ``warm_start`` history) are merged
  into the next generation pymoo is told, so survival can pick them. A ``warm_start`` before
  the first ``ask`` with at least ``population_size`` archs *is* the initial population (no
  random initial generation is spent).
- **Constraints and failures**: pymoo gets ``n_constraints + 1`` inequality columns; the last
  is 1.0 for a failed evaluation (NaN told) and 0.0 otherwise, and failed rows carry the
  stand-in values of ``Searcher._finite``. pymoo ranks infeasible points by violation, after
  every feasible one.
- **MOEA/D** takes no constraints in pymoo, so constraint violation and failure become a
  penalty: an infeasible point's objectives are set above the worst value told so far plus its
  total violation. It runs pymoo's batch variant (``ParallelMOEAD``), extended so several
  segments can be told at once; an arch it did not propose replaces the neighbourhood of the
  reference direction it decomposes best on.
- **Reference directions** (``nsga3``, ``moead``): Das-Dennis with the largest number of
  partitions whose direction count stays within ``population_size`` (2 objectives, 20: 20
  directions; 3 objectives, 20: 15). NSGA-III keeps ``population_size`` individuals; MOEA/D
  one per direction.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import deque
from math import comb

import numpy as np
from pymoo.algorithms.moo.moead import ParallelMOEAD
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.nsga3 import NSGA3
from pymoo.algorithms.moo.sms import SMSEMOA
from pymoo.core.algorithm import Algorithm
from pymoo.core.evaluator import Evaluator
from pymoo.core.individual import Individual
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.problems.static import StaticProblem
from pymoo.util.ref_dirs import get_reference_directions

from search_spaces import ArchConfig, SearchSpace

from nas.searchers.base import Evaluation, Searcher, _check_int


class PymooSearcher(Searcher):
    """Base of the pymoo adapters; subclasses build the algorithm in ``_make_algorithm``.

    Options (keyword-only, beside the ``Searcher`` ones): ``population_size`` (default 20,
    >= 4), ``max_stalls`` (default 8, >= 1): consecutive pymoo segments without an unseen arch
    before the rest of an ``ask`` is filled with random samples.
    """

    name = "pymoo"
    #: Whether the pymoo algorithm accepts inequality constraints (MOEA/D does not).
    takes_constraints = True
    #: Smallest number of objectives the algorithm handles.
    min_objectives = 1

    def __init__(
        self,
        *,
        space: SearchSpace,
        n_objectives: int,
        n_constraints: int = 0,
        seed: int,
        population_size: int = 20,
        max_stalls: int = 8,
    ) -> None:
        super().__init__(space=space, n_objectives=n_objectives, n_constraints=n_constraints, seed=seed)
        if self.n_objectives < self.min_objectives:
            raise ValueError(f"{self.name} needs n_objectives >= {self.min_objectives}, got {n_objectives}")
        self.population_size = _check_int("population_size", population_size, 4)
        self.max_stalls = _check_int("max_stalls", max_stalls, 1)
        self._vars = np.flatnonzero(space.cardinalities > 1)
        self._alg: Algorithm | None = None
        self._problem: Problem | None = None
        self._queue: deque[tuple[ArchConfig, Individual]] = deque()  # proposals not looked at yet
        self._waiting: list[tuple[ArchConfig, Individual]] = []  # looked at, not told to pymoo yet
        self._extras: dict[str, ArchConfig] = {}  # told archs pymoo did not propose
        self._stalls = 0  # pymoo segments in a row that brought no unseen arch

    # ---------------------------------------------------------------- to override
    @abstractmethod
    def _make_algorithm(self, sampling) -> Algorithm:
        """A fresh pymoo algorithm (``termination=NoTermination()``) using ``sampling``."""

    def _operators(self) -> dict:
        return {
            "crossover": SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
            "mutation": PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
        }

    # ------------------------------------------------------------------- ask/tell
    def _ask(self, n: int) -> list[ArchConfig]:
        if len(self._vars) == 0:
            return []  # a one-arch space: nothing to optimise
        self._ensure_algorithm()
        out: list[ArchConfig] = []
        # fruitless pulls carry over between asks: once pymoo has stalled, each ask probes it once
        stalls = min(self._stalls, self.max_stalls - 1)
        while len(out) < n:
            if not self._queue:
                self._maybe_flush()
                if stalls >= self.max_stalls:
                    break
                stalls += 1
                self._pull()
                continue
            row = self._queue.popleft()
            self._waiting.append(row)
            if self._claim(row[0]):
                out.append(row[0])
                stalls = 0
        self._stalls = stalls
        return out

    def _tell(self, evaluations: list[Evaluation]) -> None:
        proposed = {arch.arch_id for arch, _ in self._waiting}
        for ev in evaluations:
            if ev.arch.arch_id not in proposed:
                self._extras[ev.arch.arch_id] = ev.arch
        self._maybe_flush()

    # ------------------------------------------------------------------ internals
    def _ensure_algorithm(self) -> None:
        if self._alg is not None:
            return
        cards = self.space.cardinalities[self._vars]
        n_constr = self.n_constraints + 1 if self.takes_constraints else 0
        self._problem = Problem(
            n_var=len(self._vars), n_obj=self.n_objectives, n_ieq_constr=n_constr,
            xl=np.zeros(len(self._vars)), xu=(cards - 1).astype(float), vtype=int,
        )
        sampling = IntegerRandomSampling()
        if len(self._extras) >= self.population_size:
            # warm start: the history is the initial population (told at once, no random generation)
            sampling = np.array([self._codes(a) for a in self._extras.values()], dtype=float)
        self._alg = self._make_algorithm(sampling)
        self._alg.setup(self._problem, seed=self._child_seed(1))

    def _codes(self, arch: ArchConfig) -> np.ndarray:
        return self.space.encode(arch)[self._vars]

    def _pull(self) -> None:
        """Queue one more segment of pymoo proposals (a generation, or more offspring of the
        current parents while the last ones still wait for values)."""
        pop = self._alg.ask()
        if pop is None or len(pop) == 0:  # mating found no new offspring; pymoo flags termination
            self._alg.termination.force_termination = False
            return
        cards = self.space.cardinalities[self._vars]
        n_params = len(self.space.params)
        for ind in pop:
            codes = np.zeros(n_params, dtype=np.int64)
            codes[self._vars] = np.clip(np.rint(np.asarray(ind.X, dtype=float)), 0, cards - 1)
            self._queue.append((self._arch(codes), ind))

    def _maybe_flush(self) -> None:
        """Tell pymoo the looked-at proposals (and extras) once all of them have values.

        Proposals still in the queue stay there and are told in a later flush. pymoo's first
        tell waits for a whole initial population."""
        if self._alg is None or not (self._waiting or self._extras):
            return
        if any(self._status(arch.arch_id) != "told" for arch, _ in self._waiting):
            return
        if not self._alg.is_initialized and len({a.arch_id for a, _ in self._waiting} | set(self._extras)) \
                < self._alg.pop_size:
            return  # counted once per arch: a proposal may repeat a told arch (e.g. after a resume)
        self._flush()

    def _flush(self) -> None:
        archs = [arch for arch, _ in self._waiting]
        individuals = [ind for _, ind in self._waiting]
        seen = {arch.arch_id for arch in archs}
        for aid, arch in self._extras.items():
            if aid not in seen:
                archs.append(arch)
                individuals.append(Individual(X=self._codes(arch).astype(float)))
        self._waiting, self._extras = [], {}
        pop = Population.create(*individuals)
        values = [self._finite(arch.arch_id) for arch in archs]
        F = np.array([f for f, _, _ in values], dtype=float).reshape(len(archs), self.n_objectives)
        G = np.array([g for _, g, _ in values], dtype=float).reshape(len(archs), self.n_constraints)
        failed = np.array([bad for _, _, bad in values], dtype=float)
        if self.takes_constraints:
            out = {"F": F, "G": np.column_stack([G, failed])}
        else:
            out = {"F": self._penalised(F, G, failed)}
        Evaluator().eval(StaticProblem(self._problem, **out), pop)
        initializing = not self._alg.is_initialized
        self._alg.tell(infills=pop)
        if initializing:
            self._queue.clear()  # leftover initial samples: offspring of the told population do better

    def _penalised(self, F: np.ndarray, G: np.ndarray, failed: np.ndarray) -> np.ndarray:
        violation = np.clip(G, 0.0, None).sum(axis=1) + failed
        worst = np.where(np.isfinite(self._worst_f), self._worst_f, 0.0)
        bad = violation > 0
        F = F.copy()
        F[bad] = np.maximum(F[bad], worst) + violation[bad, None]
        return F


def _ref_dirs(n_objectives: int, budget: int) -> np.ndarray:
    """Das-Dennis directions: the most partitions whose direction count stays <= ``budget``."""
    if n_objectives == 1:
        return np.ones((1, 1))
    p = 1
    while comb(p + 1 + n_objectives - 1, n_objectives - 1) <= budget:
        p += 1
    return get_reference_directions("das-dennis", n_objectives, n_partitions=p)


class NSGA2Searcher(PymooSearcher):
    """NSGA-II (pymoo ``NSGA2``): non-dominated sorting and crowding distance. The default."""

    name = "nsga2"

    def _make_algorithm(self, sampling) -> Algorithm:
        return NSGA2(pop_size=self.population_size, sampling=sampling, termination=NoTermination(),
                     eliminate_duplicates=True, **self._operators())


class NSGA3Searcher(PymooSearcher):
    """NSGA-III (pymoo ``NSGA3``): reference-direction niching; for 2 or more objectives."""

    name = "nsga3"
    min_objectives = 2

    def _make_algorithm(self, sampling) -> Algorithm:
        ref_dirs = _ref_dirs(self.n_objectives, self.population_size)
        return NSGA3(ref_dirs=ref_dirs, pop_size=max(self.population_size, len(ref_dirs)), sampling=sampling,
                     termination=NoTermination(), eliminate_duplicates=True, **self._operators())


class AGEMOEA2Searcher(PymooSearcher):
    """AGE-MOEA-II (pymoo ``AGEMOEA2``): front-geometry-aware survival; for 2 or more objectives.

    pymoo's AGE-MOEA-II needs numba (its survival is JIT-compiled; the first generation of a
    process pays a few seconds of compilation), so ``agemoea2`` is registered only where numba
    is installed (``pip install numba``).
    """

    name = "agemoea2"
    min_objectives = 2

    def _make_algorithm(self, sampling) -> Algorithm:
        from pymoo.algorithms.moo.age2 import AGEMOEA2  # needs numba: imported only by this searcher

        return AGEMOEA2(pop_size=self.population_size, sampling=sampling, termination=NoTermination(),
                        eliminate_duplicates=True, **self._operators())


class SMSEMOASearcher(PymooSearcher):
    """SMS-EMOA (pymoo ``SMSEMOA``): survival by least hypervolume contribution; 2+ objectives."""

    name = "smsemoa"
    min_objectives = 2

    def _make_algorithm(self, sampling) -> Algorithm:
        return SMSEMOA(pop_size=self.population_size, sampling=sampling, termination=NoTermination(),
                       eliminate_duplicates=True, **self._operators())


class _BatchMOEAD(ParallelMOEAD):
    """pymoo's batch MOEA/D, told any subset of its offspring in any grouping: each offspring
    carries the reference direction it was mated for; an individual without one (an arch it
    did not propose) competes for the direction it decomposes best on."""

    def _infill(self):
        off = super()._infill()
        for ind, k in zip(off, self.indices):
            ind.set("direction", int(k))
        return off

    def _initialize_advance(self, infills=None, **kwargs):
        super()._initialize_advance(infills=infills, **kwargs)  # the ideal point from all of them
        rest = self.pop[self.pop_size:]
        self.pop = self.pop[: self.pop_size]  # one individual per direction
        if len(self.pop) < self.pop_size:  # fewer distinct archs than directions: reuse them round-robin
            self.pop = Population.create(*[self.pop[i % len(self.pop)].copy() for i in range(self.pop_size)])
        for ind in rest:
            self._replace(self._best_direction(ind), ind)

    def _advance(self, infills=None, **kwargs):
        self.ideal = np.min(np.vstack([self.ideal, infills.get("F")]), axis=0)
        for ind in infills:
            k = ind.get("direction")
            self._replace(self._best_direction(ind) if k is None else int(k), ind)

    def _best_direction(self, ind) -> int:
        values = self.decomposition.do(ind.F, weights=self.ref_dirs, ideal_point=self.ideal)
        return int(np.argmin(np.ravel(values)))


class MOEADSearcher(PymooSearcher):
    """MOEA/D (pymoo's batch ``ParallelMOEAD``): decomposition along reference directions.

    pymoo's MOEA/D takes no constraints, so violations and failures become an objective
    penalty (see the module docstring). For 2 or more objectives.
    """

    name = "moead"
    takes_constraints = False
    min_objectives = 2

    def _make_algorithm(self, sampling) -> Algorithm:
        ref_dirs = _ref_dirs(self.n_objectives, self.population_size)
        return _BatchMOEAD(ref_dirs, n_neighbors=max(2, min(15, len(ref_dirs) // 2)), sampling=sampling,
                           termination=NoTermination(), **self._operators())

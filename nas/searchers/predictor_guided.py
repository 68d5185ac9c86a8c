"""``linas``: predictor-in-the-loop search (LINAS, as in DyNAS-T), behind ``Searcher``.

Expensive objectives (``predicted``: every column not in ``cheap.indices``, e.g. accuracy) are
learnt by an :class:`~predictors.accuracy.AccuracyEnsemble` per objective. Features: the one-hot
encoding of every setting (``predictors.features.one_hot_codes``), the settings' ordinal positions
(so an option's effect is shared with its neighbours) and, for objectives that see the whole arch,
the exact cheap objectives (symmetric-log scaled: a network's MACs or SRAM carry what its blocks have
in common, which one-hot columns learn one by one).

Before ``warmup`` archs have values, ``ask`` returns a space-filling design over the cheap objectives
(maximin among 64 random unseen archs per slot: the first evaluations span the cost range instead of
bunching where uniform sampling puts them); without ``cheap``, uniform unseen samples. Then each
``ask``:
1. the ensembles are refitted on all told archs;
2. an inner pymoo NSGA-II searches ``inner_generations × inner_population`` candidates, scoring each
   with the *exact* cheap objectives and constraints (``cheap``, a
   :class:`~nas.searchers.base.CheapObjectives`) and an optimistic prediction ``mean − kappa·s·std``
   for the expensive ones, ``s`` being :func:`~nas.searchers._acquisition.spread_scale` of the
   ensembles' held-out errors so far (issue 16's calibration benchmark found the raw spread ~4× too
   narrow on tiny_mbv3, ``results/calibration.json``);
3. ``acquisition="hvi"`` (default): the batch is picked greedily by the hypervolume each candidate's
   optimistic vector adds to the evaluated front, each pick's mean joining the front before the next
   (:func:`~nas.searchers._acquisition.greedy_hvi_batch`: a diverse batch); the rest, and
   ``acquisition="front"``, the best unseen candidates by non-dominated rank, spread along each front.
Without ``cheap`` (as the registry builds it from ``space``, ``n_objectives``, ``n_constraints`` and
``seed`` alone) every objective and every constraint is predicted. Every refit first scores the
previous predictor on the archs told since (Kendall τ on evaluations it had not seen):
``kendall_history``. Every arch the predictor proposes keeps the ``(mean, var)`` its models predicted
for it when proposed, before any evaluation (true held-out predictions; :meth:`predictions`), for the
job to pair with the measured values (``nas.jobs.predictor_report``); the same pairs calibrate ``s``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from nas.searchers._acquisition import farthest_points, greedy_hvi_batch, spread_scale
from nas.searchers.base import CheapObjectives, Evaluation, Searcher, _check_int
from nas.searchers.errors import SearcherError
from predictors.features import one_hot_codes
from search_spaces import AcceleratorSpace, ArchConfig, SearchSpace

ACQUISITIONS = ("hvi", "front")
_DESIGN_POOL = 64  # random unseen archs per warm-start slot


def _symlog(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values) / scale)


class PredictorGuidedSearcher(Searcher):
    name = "linas"

    def __init__(self, *, space: SearchSpace, n_objectives: int, n_constraints: int = 0, seed: int,
                 cheap: CheapObjectives | None = None, warmup: int = 10, inner_population: int = 100,
                 inner_generations: int = 20, kappa: float = 1.0, n_members: int = 3,
                 acquisition: str = "hvi") -> None:
        super().__init__(space=space, n_objectives=n_objectives, n_constraints=n_constraints, seed=seed)
        if cheap is not None and not isinstance(cheap, CheapObjectives):
            raise ValueError(f"cheap must be a CheapObjectives or None, got {cheap!r}")
        exact = sorted({int(i) for i in cheap.indices}) if cheap is not None else []
        if not all(0 <= i < self.n_objectives for i in exact):
            raise ValueError(f"cheap.indices must name objective columns in 0..{self.n_objectives - 1}, "
                             f"got {list(cheap.indices)!r}")
        self.predicted = [i for i in range(self.n_objectives) if i not in exact]
        self.exact = exact
        if not self.predicted:
            raise SearcherError("linas predicts expensive objectives, but every objective is cheap; use nsga2")
        if not np.isfinite(kappa) or kappa < 0:
            raise ValueError(f"kappa must be a finite number >= 0, got {kappa!r}")
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, got {acquisition!r}")
        self.cheap, self.kappa, self.acquisition = cheap, float(kappa), acquisition
        # without a cheap hook the constraints are unknown until evaluated: they are predicted too
        self.predicted_constraints = list(range(self.n_constraints)) if cheap is None else []
        self.canonical_codes = (cheap.canonical_codes if cheap is not None and cheap.canonical_codes
                                else self._canonical_codes_slow)
        self.warmup = _check_int("warmup", warmup, 2)
        self.inner_population = _check_int("inner_population", inner_population, 8)
        self.inner_generations = _check_int("inner_generations", inner_generations, 1)
        self.n_members = _check_int("n_members", n_members, 1)
        self._history: list[Evaluation] = []
        self._models: dict[int, object] = {}
        self._constraint_models: dict[int, object] = {}
        self._cheap_scale: np.ndarray | None = None  # symlog scale of the cheap feature columns
        self._fitted_on = 0
        self.kendall_history: list[dict] = []
        self.inner_evaluations = 0
        self.spread_scales: dict[int, float] = {}
        # arch_id -> {column: (mean, raw ensemble var, spread scale then)}
        self._proposed: dict[str, dict[int, tuple[float, float, float]]] = {}

    # ----------------------------------------------------------------- hooks
    def _tell(self, evaluations: list[Evaluation]) -> None:
        self._history.extend(e for e in evaluations if not e.failed)

    def _ask(self, n: int) -> list[ArchConfig]:
        if len(self._history) < self.warmup:
            return self._warm_design(n)  # the base class fills the rest with unseen uniform samples
        self._refit()
        picked = []
        for arch in self._inner_search(n):
            if len(picked) == n:
                break
            if self._claim(arch):
                picked.append(arch)
        self._remember_predictions(picked)
        return picked

    def predictions(self, arch_ids: Sequence[str]) -> dict[str, dict[int, tuple[float, float]]]:
        """``(mean, var)`` per predicted objective column of the archs among ``arch_ids`` that the
        models proposed, as predicted then, the variance widened by the spread scale of that time
        (what linas believed; see :meth:`Searcher.predictions`)."""
        return {aid: {i: (mean, var * scale**2) for i, (mean, var, scale) in self._proposed[aid].items()}
                for aid in arch_ids if aid in self._proposed}

    def _warm_design(self, n: int) -> list[ArchConfig]:
        """Up to ``n`` claimed unseen archs spread over the cheap objectives, among those that meet the
        cheap constraints when any does (none without ``cheap``)."""
        if self.cheap is None or not self.exact:
            return []
        k = min(n, self.warmup - len(self._history) - len(self._pending))
        pool = {}
        for _ in range(_DESIGN_POOL * max(k, 0)):
            arch = self.space.sample(self._rng)
            if self._status(arch.arch_id) == "new":
                pool.setdefault(arch.arch_id, arch)
        if k <= 0 or not pool:
            return []
        archs = list(pool.values())
        F, G = self._exact(np.vstack([self.space.encode(a) for a in archs]))
        feasible = (G <= 0).all(axis=1)  # cheap constraints screen the design too
        if feasible.any():
            archs, F = [a for a, ok in zip(archs, feasible) if ok], F[feasible]
        values = F[:, self.exact]
        known = [*self._pending.values(), *(e.arch for e in self._told.values())]
        fixed = self._exact(np.vstack([self.space.encode(a) for a in known]))[0][:, self.exact] if known else None
        picked = [archs[i] for i in farthest_points(values, k, fixed=fixed, rng=self._rng)]
        return [a for a in picked if self._claim(a)]

    # ------------------------------------------------------------- predictor
    def _one_hot(self, codes: np.ndarray) -> np.ndarray:
        """Features of the network columns: a co-design space's accelerator settings are left out, for
        the models of objectives that depend on the network alone (``cheap.network_only``)."""
        n = self._network_columns
        cards = self.space.cardinalities[:n]
        codes = np.asarray(codes)[:, :n]
        return np.hstack([one_hot_codes(cards, codes), codes / np.maximum(cards - 1, 1)])

    def _all_columns(self, codes: np.ndarray, cheap_values: np.ndarray | None = None) -> np.ndarray:
        """Features of every column (constraints may depend on the accelerator too), with the cheap
        objectives' values (``cheap_values``: their exact values, computed when not given)."""
        cards = self.space.cardinalities
        X = [one_hot_codes(cards, codes), np.asarray(codes) / np.maximum(cards - 1, 1)]
        if self.exact:
            if cheap_values is None:
                cheap_values = self._exact(codes)[0][:, self.exact]
            if self._cheap_scale is None:
                spread = np.median(np.abs(cheap_values), axis=0)
                self._cheap_scale = np.where(spread > 0, spread, 1.0)
            X.append(_symlog(cheap_values, self._cheap_scale))
        return np.hstack(X)

    def _inputs(self, codes: np.ndarray, cheap_values: np.ndarray | None = None):
        """``(full, input_of)``: the features of every column, and ``column -> features`` for a model
        (network-only objectives see the network columns alone); each matrix built once."""
        full = self._all_columns(codes, cheap_values)
        network = self._one_hot(codes) if self._network_only else None
        return full, lambda column: network if column in self._network_only else full

    @property
    def _network_only(self) -> tuple[int, ...]:
        return self.cheap.network_only if self.cheap is not None else ()

    @property
    def _network_columns(self) -> int:
        space = self.space
        return len(space.base.params) if isinstance(space, AcceleratorSpace) else len(space.params)

    def _canonical_codes_slow(self, codes: np.ndarray) -> np.ndarray:
        return np.vstack([self.space.encode(self._arch(row)) for row in codes])

    def _score_previous(self, codes: np.ndarray) -> None:
        """Kendall τ of the current models on the archs told since they were fitted (``codes``: all told)."""
        from predictors.metrics import kendall_tau

        new = slice(self._fitted_on, len(self._history))
        if not self._models or len(self._history) - self._fitted_on < 3:
            return
        input_of = self._inputs(codes[new])[1]
        for i, model in self._models.items():
            y_new = np.array([e.objectives[i] for e in self._history[new]])
            tau = kendall_tau(y_new, model.predict(input_of(i)))
            self.kendall_history.append({"objective": i, "n_train": self._fitted_on,
                                         "n_held_out": len(y_new), "kendall_tau": tau})

    def _remember_predictions(self, archs: list[ArchConfig]) -> None:
        """Record what the current models predict for ``archs``, before they are evaluated."""
        if not archs or not self._models:
            return
        input_of = self._inputs(np.vstack([self.space.encode(a) for a in archs]))[1]
        for i, model in self._models.items():
            mean, var = model.predict_dist(input_of(i))
            for arch, m, v in zip(archs, mean, var):
                self._proposed.setdefault(arch.arch_id, {})[i] = (float(m), float(v), self.spread_scales.get(i, 1.0))

    def _calibrate(self) -> None:
        """``spread_scales``: per predicted objective, how much the ensemble's std understated the
        error of its own proposals once they were evaluated."""
        for i in self.predicted:
            pairs = [(e.objectives[i] - self._proposed[e.arch.arch_id][i][0], self._proposed[e.arch.arch_id][i][1])
                     for e in self._history if e.arch.arch_id in self._proposed and i in self._proposed[e.arch.arch_id]]
            residuals, variances = (np.array(v, float) for v in zip(*pairs)) if pairs else (np.zeros(0), np.zeros(0))
            self.spread_scales[i] = spread_scale(residuals, np.sqrt(variances))

    def _refit(self) -> None:
        from predictors.accuracy import AccuracyEnsemble

        if self._fitted_on == len(self._history):
            return
        codes = np.vstack([self.space.encode(e.arch) for e in self._history])
        self._score_previous(codes)
        self._calibrate()
        self._cheap_scale = None  # refitted on what is told now
        Xc, input_of = self._inputs(codes)
        for i in self.predicted:
            y = np.array([e.objectives[i] for e in self._history])
            self._models[i] = AccuracyEnsemble(seed=self.seed + i, n_members=self.n_members).fit(input_of(i), y)
        for j in self.predicted_constraints:
            y = np.array([e.constraints[j] for e in self._history])
            seed = self.seed + self.n_objectives + j
            self._constraint_models[j] = AccuracyEnsemble(seed=seed, n_members=self.n_members).fit(Xc, y)
        self._fitted_on = len(self._history)

    def _exact(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cheap objectives and constraints of canonical code rows (NaN and 0.0 without a hook)."""
        n = len(codes)
        if self.cheap is None:
            return np.full((n, self.n_objectives), np.nan), np.zeros((n, self.n_constraints))
        if self.cheap.evaluate_codes is not None:
            F, G = self.cheap.evaluate_codes(codes)
        else:
            F, G = self.cheap.evaluate([self.space.decode(row) for row in codes])
        return (np.array(F, dtype=np.float64).reshape(n, self.n_objectives),
                np.array(G, dtype=np.float64).reshape(n, self.n_constraints))

    def predict(self, codes: np.ndarray, *, count: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For canonical code rows: ``(mean, std, G)``, the objectives (exact cheap ones with std 0,
        predicted means and calibrated stds, ``spread_scales`` applied, for the others) and the
        constraints (exact, or optimistic predictions ``mean − kappa·std``); all minimised."""
        F, G = self._exact(codes)
        std = np.zeros_like(F)
        full, input_of = self._inputs(codes, F[:, self.exact] if self.exact else None)
        for i, model in self._models.items():
            mean, var = model.predict_dist(input_of(i))
            F[:, i], std[:, i] = mean, self.spread_scales.get(i, 1.0) * np.sqrt(var)
        for j, model in self._constraint_models.items():
            mean, var = model.predict_dist(full)
            G[:, j] = mean - self.kappa * np.sqrt(var)
        self.inner_evaluations += len(codes) if count else 0
        return F, std, G

    def surrogate(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For canonical code rows: exact cheap objectives and constraints, and optimistic
        predictions (``mean − kappa·std``, calibrated std) for the predicted ones; all minimised."""
        F, std, G = self.predict(codes)
        return F - self.kappa * std, G

    # ------------------------------------------------------------ inner search
    def _inner_search(self, n: int) -> list[ArchConfig]:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling
        from pymoo.optimize import minimize
        searcher, cards = self, self.space.cardinalities
        seen = {self.space.encode(a).tobytes() for a in (*self._pending.values(), *(e.arch for e in self._told.values()))}
        pool: dict[bytes, np.ndarray] = {}

        class Surrogate(Problem):
            def __init__(self) -> None:
                super().__init__(n_var=len(cards), n_obj=searcher.n_objectives,
                                 n_ieq_constr=searcher.n_constraints, xl=0, xu=cards - 1, vtype=int)

            def _evaluate(self, X, out, *args, **kwargs):
                codes = searcher.canonical_codes(np.round(X).astype(np.int64))
                F, G = searcher.surrogate(codes)
                for row in codes:
                    if (key := row.tobytes()) not in seen:
                        pool.setdefault(key, row)
                out["F"] = F
                if searcher.n_constraints:
                    out["G"] = G

        algorithm = NSGA2(pop_size=self.inner_population, sampling=IntegerRandomSampling(),
                          crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
                          mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                          eliminate_duplicates=True)
        inner_seed = int(self._rng.integers(2**31 - 1))
        minimize(Surrogate(), algorithm, ("n_gen", self.inner_generations), seed=inner_seed, verbose=False)
        if not pool:
            return []
        rows = np.array(list(pool.values()))
        mean, std, G = self.predict(rows, count=False)  # the pool again, already counted
        optimistic = mean - self.kappa * std
        violation = np.clip(G, 0, None).sum(axis=1) if self.n_constraints else np.zeros(len(rows))
        feasible = np.flatnonzero(violation <= 0)
        order: list[int] = []
        if self.acquisition == "hvi" and len(feasible):
            order = feasible[greedy_hvi_batch(optimistic[feasible], mean[feasible], self._evaluated_front(), n,
                                              rng=self._rng)].tolist()
        wanted = max(n, 1) * 4
        taken = set(order)
        order += [i for i in _front_order(optimistic, feasible, wanted) if i not in taken]
        infeasible = np.flatnonzero(violation > 0)
        order.extend(infeasible[np.argsort(violation[infeasible], kind="stable")].tolist())
        return [self._arch(rows[i]) for i in order[:wanted]]

    def _evaluated_front(self) -> np.ndarray:
        """The feasible non-dominated objective vectors told so far."""
        from nas.searchers.loop import pareto_mask

        if not self._history:
            return np.zeros((0, self.n_objectives))
        F = np.array([e.objectives for e in self._history])
        G = np.array([e.constraints for e in self._history]).reshape(len(F), self.n_constraints)
        return F[pareto_mask(F, G)]

    def report(self) -> dict:
        """What the job records: the predictor's held-out Kendall τ per refit, inner evaluations and the
        spread scale per predicted objective column."""
        return {"kendall_tau": self.kendall_history, "inner_evaluations": self.inner_evaluations,
                "spread_scale": {str(i): round(v, 3) for i, v in self.spread_scales.items()}}


def _front_order(F: np.ndarray, feasible: np.ndarray, wanted: int) -> list[int]:
    """Up to ``wanted`` of the ``feasible`` rows of ``F``: by non-dominated rank, each front's picks
    spread along it (ends included)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    order: list[int] = []
    if not len(feasible):
        return order
    for front in NonDominatedSorting().do(F[feasible]):
        members = feasible[front][np.argsort(F[feasible[front], 0], kind="stable")]
        room = wanted - len(order)
        if len(members) > room > 0:
            members = members[np.unique(np.linspace(0, len(members) - 1, room).round().astype(int))]
        order.extend(members.tolist())
        if len(order) >= wanted:
            break
    return order

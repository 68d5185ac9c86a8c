"""``linas``: predictor-in-the-loop search (LINAS, as in DyNAS-T), behind ``Searcher``.

Expensive objectives (``predicted``: every column not in ``cheap.indices``, e.g. accuracy) are
learnt by an :class:`~predictors.accuracy.AccuracyEnsemble` per objective, on the one-hot encoding
(``predictors.features.one_hot_codes``) of every arch told so far. Each round (each ``ask`` once
``warmup`` archs have values):
1. the ensembles are refitted on all told archs;
2. an inner pymoo NSGA-II searches ``inner_generations × inner_population`` candidates, scoring
   each with the *exact* cheap objectives and constraints (``cheap``, a
   :class:`~nas.searchers.base.CheapObjectives`) and an optimistic prediction (``mean − kappa·std``,
   all minimised) for the expensive ones;
3. the best unseen candidates (non-dominated rank, then crowding) are returned for real evaluation.
Without ``cheap`` (as the registry builds it from ``space``, ``n_objectives``, ``n_constraints`` and
``seed`` alone) every objective and every constraint is predicted. Before ``warmup`` values exist,
``ask`` returns uniform unseen samples. Every refit first scores the previous predictor on the
archs told since (Kendall τ on evaluations it had not seen): ``kendall_history``. Every arch the
predictor proposes keeps the ``(mean, var)`` its models predicted for it when proposed, before any
evaluation (true held-out predictions; :meth:`predictions`), for the job to pair with the measured
values (``nas.jobs.predictor_report``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from nas.searchers.base import CheapObjectives, Evaluation, Searcher, _check_int
from nas.searchers.errors import SearcherError
from predictors.features import one_hot_codes
from search_spaces import AcceleratorSpace, ArchConfig, SearchSpace


class PredictorGuidedSearcher(Searcher):
    name = "linas"

    def __init__(self, *, space: SearchSpace, n_objectives: int, n_constraints: int = 0, seed: int,
                 cheap: CheapObjectives | None = None, warmup: int = 16, inner_population: int = 100,
                 inner_generations: int = 20, kappa: float = 0.5, n_members: int = 3) -> None:
        super().__init__(space=space, n_objectives=n_objectives, n_constraints=n_constraints, seed=seed)
        if cheap is not None and not isinstance(cheap, CheapObjectives):
            raise ValueError(f"cheap must be a CheapObjectives or None, got {cheap!r}")
        exact = sorted({int(i) for i in cheap.indices}) if cheap is not None else []
        if not all(0 <= i < self.n_objectives for i in exact):
            raise ValueError(f"cheap.indices must name objective columns in 0..{self.n_objectives - 1}, "
                             f"got {list(cheap.indices)!r}")
        self.predicted = [i for i in range(self.n_objectives) if i not in exact]
        if not self.predicted:
            raise SearcherError("linas predicts expensive objectives, but every objective is cheap; use nsga2")
        if not np.isfinite(kappa) or kappa < 0:
            raise ValueError(f"kappa must be a finite number >= 0, got {kappa!r}")
        self.cheap, self.kappa = cheap, float(kappa)
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
        self._fitted_on = 0
        self.kendall_history: list[dict] = []
        self.inner_evaluations = 0
        self._proposed: dict[str, dict[int, tuple[float, float]]] = {}  # arch_id -> {column: (mean, var)}

    # ----------------------------------------------------------------- hooks
    def _tell(self, evaluations: list[Evaluation]) -> None:
        self._history.extend(e for e in evaluations if not e.failed)

    def _ask(self, n: int) -> list[ArchConfig]:
        if len(self._history) < self.warmup:
            return []  # the base class fills the batch with unseen uniform samples
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
        models proposed, as predicted then (see :meth:`Searcher.predictions`)."""
        return {aid: dict(self._proposed[aid]) for aid in arch_ids if aid in self._proposed}

    # ------------------------------------------------------------- predictor
    def _one_hot(self, codes: np.ndarray) -> np.ndarray:
        """One-hot features of the network columns: a co-design space's accelerator settings are left
        out, for the models of objectives that depend on the network alone (``cheap.network_only``)."""
        n = self._network_columns
        return one_hot_codes(self.space.cardinalities[:n], np.asarray(codes)[:, :n])

    def _all_columns(self, codes: np.ndarray) -> np.ndarray:
        """One-hot features of every column (constraints may depend on the accelerator too)."""
        return one_hot_codes(self.space.cardinalities, codes)

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
        for i, model in self._models.items():
            y_new = np.array([e.objectives[i] for e in self._history[new]])
            X = self._one_hot(codes[new]) if i in self._network_only else self._all_columns(codes[new])
            tau = kendall_tau(y_new, model.predict(X))
            self.kendall_history.append({"objective": i, "n_train": self._fitted_on,
                                         "n_held_out": len(y_new), "kendall_tau": tau})

    def _remember_predictions(self, archs: list[ArchConfig]) -> None:
        """Record what the current models predict for ``archs``, before they are evaluated."""
        if not archs or not self._models:
            return
        codes = np.vstack([self.space.encode(a) for a in archs])
        full, network = self._all_columns(codes), self._one_hot(codes) if self._network_only else None
        for i, model in self._models.items():
            mean, var = model.predict_dist(network if i in self._network_only else full)
            for arch, m, v in zip(archs, mean, var):
                self._proposed.setdefault(arch.arch_id, {})[i] = (float(m), float(v))

    def _refit(self) -> None:
        from predictors.accuracy import AccuracyEnsemble

        if self._fitted_on == len(self._history):
            return
        codes = np.vstack([self.space.encode(e.arch) for e in self._history])
        self._score_previous(codes)
        Xc = self._all_columns(codes)
        for i in self.predicted:
            y = np.array([e.objectives[i] for e in self._history])
            X = self._one_hot(codes) if i in self._network_only else Xc
            self._models[i] = AccuracyEnsemble(seed=self.seed + i, n_members=self.n_members).fit(X, y)
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

    def surrogate(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For canonical code rows: exact cheap objectives and constraints, and optimistic
        predictions (``mean − kappa·std``) for the predicted ones; all minimised."""
        F, G = self._exact(codes)
        full, network = self._all_columns(codes), self._one_hot(codes) if self._network_only else None
        for columns, models in ((F, self._models), (G, self._constraint_models)):
            for i, model in models.items():
                X = network if models is self._models and i in self._network_only else full
                mean, var = model.predict_dist(X)
                columns[:, i] = mean - self.kappa * np.sqrt(var)
        self.inner_evaluations += len(codes)
        return F, G

    # ------------------------------------------------------------ inner search
    def _inner_search(self, n: int) -> list[ArchConfig]:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling
        from pymoo.optimize import minimize
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        searcher, cards = self, self.space.cardinalities
        seen = {self.space.encode(a).tobytes() for a in (*self._pending.values(), *(e.arch for e in self._told.values()))}
        pool: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

        class Surrogate(Problem):
            def __init__(self) -> None:
                super().__init__(n_var=len(cards), n_obj=searcher.n_objectives,
                                 n_ieq_constr=searcher.n_constraints, xl=0, xu=cards - 1, vtype=int)

            def _evaluate(self, X, out, *args, **kwargs):
                codes = searcher.canonical_codes(np.round(X).astype(np.int64))
                F, G = searcher.surrogate(codes)
                for row, f, g in zip(codes, F, G):
                    key = row.tobytes()
                    if key not in seen:
                        pool.setdefault(key, (row, f, g))
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
        rows = [row for row, _, _ in pool.values()]
        F = np.array([f for _, f, _ in pool.values()])
        G = np.array([g for _, _, g in pool.values()]).reshape(len(rows), self.n_constraints)
        violation = np.clip(G, 0, None).sum(axis=1) if self.n_constraints else np.zeros(len(rows))
        feasible = np.flatnonzero(violation <= 0)
        wanted, order = max(n, 1) * 4, []
        if len(feasible):
            for front in NonDominatedSorting().do(F[feasible]):
                members = feasible[front][np.argsort(F[feasible[front], 0], kind="stable")]
                room = wanted - len(order)
                if len(members) > room > 0:  # spread the picks along the front, ends included
                    members = members[np.unique(np.linspace(0, len(members) - 1, room).round().astype(int))]
                order.extend(members.tolist())
                if len(order) >= wanted:
                    break
        infeasible = np.flatnonzero(violation > 0)
        order.extend(infeasible[np.argsort(violation[infeasible], kind="stable")].tolist())
        return [self._arch(rows[i]) for i in order[:wanted]]

    def report(self) -> dict:
        """What the job records: the predictor's held-out Kendall τ per refit and inner evaluations."""
        return {"kendall_tau": self.kendall_history, "inner_evaluations": self.inner_evaluations}

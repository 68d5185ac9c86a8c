"""``linas``: predictor-in-the-loop search (LINAS, as in DyNAS-T), behind ``Searcher``.

Expensive objectives (``predicted``: their column indices, e.g. accuracy) are learnt by an
:class:`~predictors.accuracy.AccuracyEnsemble` per objective, on the one-hot encoding of every
arch told so far. Each round (each ``ask`` once ``warmup`` archs have values):
1. the ensembles are refitted on all told archs;
2. an inner pymoo NSGA-II searches ``inner_generations × inner_population`` candidates, scoring
   each with the *exact* cheap objectives and constraints (``cheap(archs) -> (F, G)``, columns of
   ``predicted`` ignored) and an optimistic prediction (``mean − kappa·std``, all minimised) for
   the expensive ones;
3. the best unseen candidates (non-dominated rank, then crowding) are returned for real evaluation.
Before ``warmup`` values exist, ``ask`` returns uniform unseen samples. Every refit first scores
the previous predictor on the archs told since (Kendall τ on evaluations it had not seen):
``kendall_history``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from nas.searchers.base import Evaluation, Searcher, _check_int
from search_spaces import ArchConfig, SearchSpace

Cheap = Callable[[list[ArchConfig]], "tuple[np.ndarray, np.ndarray]"]
CheapCodes = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


class PredictorGuidedSearcher(Searcher):
    name = "linas"

    def __init__(self, *, space: SearchSpace, n_objectives: int, n_constraints: int = 0, seed: int,
                 predicted: Sequence[int], cheap: Cheap, cheap_codes: CheapCodes | None = None,
                 canonical_codes: Callable[[np.ndarray], np.ndarray] | None = None, warmup: int = 16,
                 inner_population: int = 100,
                 inner_generations: int = 20, kappa: float = 0.5, n_members: int = 3) -> None:
        super().__init__(space=space, n_objectives=n_objectives, n_constraints=n_constraints, seed=seed)
        self.predicted = sorted({int(i) for i in predicted})
        if not self.predicted or not all(0 <= i < self.n_objectives for i in self.predicted):
            raise ValueError(f"predicted must name objective columns in 0..{self.n_objectives - 1}, got {predicted!r}")
        if not callable(cheap):
            raise ValueError(f"cheap must be a callable archs -> (F, G), got {cheap!r}")
        if not np.isfinite(kappa) or kappa < 0:
            raise ValueError(f"kappa must be a finite number >= 0, got {kappa!r}")
        self.cheap, self.cheap_codes, self.kappa = cheap, cheap_codes, float(kappa)
        self.canonical_codes = canonical_codes or self._canonical_codes_slow
        cards = space.cardinalities
        self._offsets = np.concatenate([[0], np.cumsum(cards)[:-1]])
        self._width = int(cards.sum())
        self.warmup = _check_int("warmup", warmup, 2)
        self.inner_population = _check_int("inner_population", inner_population, 8)
        self.inner_generations = _check_int("inner_generations", inner_generations, 1)
        self.n_members = _check_int("n_members", n_members, 1)
        self._history: list[Evaluation] = []
        self._models: dict[int, object] = {}
        self._fitted_on = 0
        self.kendall_history: list[dict] = []
        self.inner_evaluations = 0

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
        return picked

    # ------------------------------------------------------------- predictor
    def _features(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        return self._one_hot(np.vstack([self.space.encode(a) for a in archs]))

    def _one_hot(self, codes: np.ndarray) -> np.ndarray:
        """One-hot rows of option indices, as ``predictors.features.one_hot`` builds them."""
        out = np.zeros((len(codes), self._width))
        out[np.arange(len(codes))[:, None], self._offsets[None, :] + codes] = 1.0
        return out

    def _canonical_codes_slow(self, codes: np.ndarray) -> np.ndarray:
        return np.vstack([self.space.encode(self._arch(row)) for row in codes])

    def _refit(self) -> None:
        from predictors.accuracy import AccuracyEnsemble
        from predictors.metrics import kendall_tau

        if self._fitted_on == len(self._history):
            return
        X = self._features([e.arch for e in self._history])
        new = slice(self._fitted_on, len(self._history))
        if self._models and len(self._history) - self._fitted_on >= 3:
            for i, model in self._models.items():
                y_new = np.array([e.objectives[i] for e in self._history[new]])
                tau = kendall_tau(y_new, model.predict(X[new]))
                self.kendall_history.append({"objective": i, "n_train": self._fitted_on,
                                             "n_held_out": len(y_new), "kendall_tau": tau})
        for i in self.predicted:
            y = np.array([e.objectives[i] for e in self._history])
            self._models[i] = AccuracyEnsemble(seed=self.seed + i, n_members=self.n_members).fit(X, y)
        self._fitted_on = len(self._history)

    def surrogate(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For canonical code rows: exact cheap objectives and constraints, and optimistic
        predictions (``mean − kappa·std``) for the expensive ones; all minimised."""
        if self.cheap_codes is not None:
            F, G = self.cheap_codes(codes)
        else:
            F, G = self.cheap([self.space.decode(row) for row in codes])
        F = np.array(F, dtype=np.float64).reshape(len(codes), self.n_objectives)
        G = np.array(G, dtype=np.float64).reshape(len(codes), self.n_constraints)
        X = self._one_hot(codes)
        for i, model in self._models.items():
            mean, var = model.predict_dist(X)
            F[:, i] = mean - self.kappa * np.sqrt(var)
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

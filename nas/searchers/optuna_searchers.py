"""optuna adapters: ``tpe``, ``optuna-nsga2`` and ``gp`` behind ``Searcher``.

Each searcher owns an in-memory study (``directions`` all "minimize") and drives it with
``study.ask(fixed_distributions)`` / ``study.tell``. No optuna storage or global state is used
(the study's creation message is silenced by raising optuna's log level around that one call).

- **Encoding**: one ``CategoricalDistribution`` over option *indices* per setting with more
  than one option (single-option settings are fixed at 0). Parameter names are the setting
  names, so the internal study reads like the store's.
- **Constraints** use optuna 5's trial API: ``trial.set_constraint("c<j>", value)`` before
  ``tell`` (optuna keeps them in the trial's system attributes, where every constrained sampler
  reads them; ``constraints_func`` is deprecated in optuna 5).
- **Failures**: with constraints, a failed row is told as a complete, infeasible trial with the
  stand-ins of ``Searcher._finite`` (worst objectives, constraints >= 1.0). Without constraints
  it is told as ``TrialState.FAIL``; the samplers then ignore it (the arch is still never asked
  again).
- **Duplicates**: a sampled arch that was told already is told to its trial with the cached
  values at once (the sampler learns, no evaluation is spent) and the study is asked again;
  one that is pending gets its trial told with the same values when it comes back. After
  ``max_retries`` consecutive duplicates the base class fills the rest of the ``ask`` with
  unseen random samples; until the sampler proposes an unseen arch again, later asks probe it
  once only.
- **Archs the study did not propose** (those random fill-ins, ``warm_start`` history) are added
  with ``study.add_trial`` (``optuna-nsga2`` instead enqueues, asks and tells them, so its
  generation bookkeeping counts them).
"""

from __future__ import annotations

import contextlib
import warnings
from abc import abstractmethod

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import Trial, TrialState, create_trial

from search_spaces import ArchConfig, SearchSpace

from nas.searchers.base import Evaluation, Searcher, _check_int


def _quiet_study(sampler: optuna.samplers.BaseSampler, n_objectives: int) -> optuna.Study:
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.create_study(sampler=sampler, directions=["minimize"] * n_objectives, study_name="hwnas-searcher")
    finally:
        optuna.logging.set_verbosity(previous)


class OptunaSearcher(Searcher):
    """Base of the optuna adapters; subclasses build the sampler in ``_make_sampler``.

    Options (keyword-only, beside the ``Searcher`` ones): ``max_retries`` (default 16, >= 1):
    consecutive duplicate proposals before the rest of an ``ask`` is filled with random samples.
    """

    name = "optuna"
    #: Add archs the study did not propose through enqueue/ask/tell instead of ``add_trial``.
    _extras_through_ask = False

    def __init__(
        self, *, space: SearchSpace, n_objectives: int, n_constraints: int = 0, seed: int, max_retries: int = 16,
    ) -> None:
        super().__init__(space=space, n_objectives=n_objectives, n_constraints=n_constraints, seed=seed)
        self.max_retries = _check_int("max_retries", max_retries, 1)
        self._dists = {p.name: CategoricalDistribution(list(range(len(p)))) for p in space.params if len(p) > 1}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._study = _quiet_study(self._make_sampler(self._child_seed(1)), self.n_objectives)
        self._trials: dict[str, list[Trial]] = {}  # pending arch_id -> its trial and duplicate trials
        self._retries = 0  # duplicate proposals in a row

    @abstractmethod
    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """A fresh, seeded sampler."""

    def _sampling_context(self) -> contextlib.AbstractContextManager:
        """Entered around sampling (``study.ask``); by default nothing."""
        return contextlib.nullcontext()

    # ------------------------------------------------------------------- ask/tell
    def _ask(self, n: int) -> list[ArchConfig]:
        if not self._dists:
            return []  # a one-arch space: nothing to optimise
        with self._sampling_context():
            return self._ask_unseen(n)

    def _ask_unseen(self, n: int) -> list[ArchConfig]:
        out: list[ArchConfig] = []
        # duplicates in a row carry over between asks: once the sampler has stalled, each ask
        # probes it once (sampling is slow for gp, and a nearly exhausted space stalls for good)
        retries = min(self._retries, self.max_retries - 1)
        while len(out) < n and retries < self.max_retries:
            trial = self._study.ask(self._dists)
            arch = self._arch_of(trial.params)
            aid = arch.arch_id
            if self._claim(arch):
                self._trials[aid] = [trial]
                out.append(arch)
                retries = 0
                continue
            retries += 1
            if self._status(aid) == "told":
                self._finish(trial, aid)
            else:  # pending: told with the same values when they come back
                self._trials.setdefault(aid, []).append(trial)
        self._retries = retries
        return out

    def _tell(self, evaluations: list[Evaluation]) -> None:
        for ev in evaluations:
            aid = ev.arch.arch_id
            trials = self._trials.pop(aid, None)
            if trials:
                for trial in trials:
                    self._finish(trial, aid)
            else:
                self._add_extra(ev.arch)

    # ------------------------------------------------------------------ internals
    def _arch_of(self, params: dict) -> ArchConfig:
        return self._arch([int(params.get(p.name, 0)) for p in self.space.params])

    def _params_of(self, arch: ArchConfig) -> dict:
        codes = self.space.encode(arch)
        return {p.name: int(c) for p, c in zip(self.space.params, codes) if p.name in self._dists}

    def _outcome(self, aid: str) -> tuple[list[float] | None, dict[str, float], TrialState]:
        f, g, failed = self._finite(aid)
        if failed and not self.n_constraints:
            return None, {}, TrialState.FAIL
        constraints = {f"c{j}": float(v) for j, v in enumerate(g)}
        return [float(v) for v in f], constraints, TrialState.COMPLETE

    def _finish(self, trial: Trial, aid: str) -> None:
        values, constraints, state = self._outcome(aid)
        for key, value in constraints.items():
            trial.set_constraint(key, value)
        self._study.tell(trial, values, state=state)

    def _add_extra(self, arch: ArchConfig) -> None:
        if not self._dists:
            return
        if self._extras_through_ask:
            self._study.enqueue_trial(self._params_of(arch))
            trial = self._study.ask(self._dists)
            self._finish(trial, arch.arch_id)
            return
        values, constraints, state = self._outcome(arch.arch_id)
        self._study.add_trial(
            create_trial(state=state, values=values, params=self._params_of(arch), distributions=self._dists,
                         constraints=constraints or None)
        )


class TPESearcher(OptunaSearcher):
    """Multivariate TPE (optuna ``TPESampler(multivariate=True)``, constant liar for pending
    trials); 10 random startup trials."""

    name = "tpe"

    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=10)


class OptunaNSGA2Searcher(OptunaSearcher):
    """optuna's ``NSGAIISampler`` (its own crossover over categorical params), generations of
    ``population_size`` (default 20, >= 4)."""

    name = "optuna-nsga2"
    _extras_through_ask = True

    def __init__(
        self, *, space: SearchSpace, n_objectives: int, n_constraints: int = 0, seed: int,
        population_size: int = 20, max_retries: int = 16,
    ) -> None:
        self.population_size = _check_int("population_size", population_size, 4)
        super().__init__(space=space, n_objectives=n_objectives, n_constraints=n_constraints, seed=seed,
                         max_retries=max_retries)

    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=self.population_size)


class GPSearcher(OptunaSearcher):
    """optuna's ``GPSampler`` (Gaussian process, log-EHVI for several objectives, constrained
    variants when constraints are told); 10 random startup trials.

    It is accurate per evaluation but slow: every ask refits the GPs and optimises the
    acquisition, and asks while other trials are pending use the costlier batch (q-) variants.
    Sampling runs with BLAS and OpenMP limited to one thread (``threadpoolctl``, when installed):
    numpy's OpenBLAS and torch's OpenMP pools otherwise oversubscribe the cores, which measured
    4-10x slower here (2 cores: 100 evaluations in batches of 10 took ~50 s limited, over 170 s
    not). Use it for budgets of a few hundred evaluations at most. Registered only when the
    installed optuna has ``GPSampler`` (optuna >= 3.6) and torch and scipy are importable.
    """

    name = "gp"

    def _sampling_context(self) -> contextlib.AbstractContextManager:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            return contextlib.nullcontext()
        return threadpool_limits(limits=1)

    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10)

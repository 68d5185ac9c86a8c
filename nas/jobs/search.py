"""``nas.search`` (this module: ``nas.jobs.search``): a thin loop over ask/tell, a job store and an evaluator.

Each round the searcher proposes archs; the evaluator screens them with cheap metrics and
constraints (rejected ones are recorded as PRUNED trials and told to the searcher as failures);
the rest are queued in the job store, claimed by this process or by ``nas worker`` processes
sharing the storage, and read back when every one of them is finished. ``budget`` counts expensive
evaluations (COMPLETE or FAIL trials); at most ``MAX_REJECT_FACTOR × budget`` archs are screened.
Rerunning with the same job name and storage resumes: finished trials warm-start the searcher and
count against the budget; nothing finished is evaluated again.
"""

from __future__ import annotations

import time
import traceback
from typing import Sequence

import numpy as np
from tqdm import tqdm

from nas.jobs.evaluator import Evaluator, Outcome
from nas.jobs.objectives import Constraint, MetricCatalog, Objective, ObjectiveError
from nas.jobs.results import SearchResult, latest_trials, normalised_hypervolume, objective_matrix
from nas.searchers import create_searcher
from nas.jobs.store import Job, open_storage
from search_spaces import ArchConfig, NASError, SearchSpace

MAX_REJECT_FACTOR = 20
POLL_S = 0.2


def job_config(space: SearchSpace, evaluator: Evaluator, *, algorithm: str, budget: int, seed: int,
               extra: dict | None = None) -> dict:
    """What the store records about a job (see ``nas.jobs.store``)."""
    return {"space": space.name, "space_version": space.version,
            "objectives": [{"name": o.name, "direction": o.direction,
                            "metric": o.fn if isinstance(o.fn, str) else None} for o in evaluator.objectives],
            "constraints": [c.label for c in evaluator.constraints],
            "algorithm": algorithm, "budget": budget, "seed": seed, **(extra or {})}


def _front_postfix(result: SearchResult) -> dict:
    """Front size and its hypervolume, normalised by the ideal and nadir of every feasible
    evaluation so far (reference 1.1 per objective)."""
    front = result.front_matrix()
    if not len(front):
        return {"front": 0}
    return {"front": len(front), "hv": f"{normalised_hypervolume(front, result.feasible_matrix()):.3f}"}


def make_searcher(algorithm: str, evaluator: Evaluator, seed: int):
    """A registered searcher, or ``linas``: predictor-guided over the expensive objectives, with the
    cheap ones and the cheap constraints computed exactly by the evaluator."""
    objectives, constraints = evaluator.objectives, evaluator.constraints
    common = dict(space=evaluator.space, n_objectives=len(objectives), n_constraints=len(constraints), seed=seed)
    if algorithm != "linas":
        return create_searcher(algorithm, **common)
    from nas.searchers.predictor_guided import PredictorGuidedSearcher

    predicted = [i for i, o in enumerate(objectives) if not evaluator.is_cheap(o.name)]
    if not predicted:
        raise ObjectiveError("algorithm 'linas' predicts expensive objectives, but every objective is cheap; "
                             "use nsga2")

    def cheap(archs):
        outcomes = evaluator.screen(archs)
        F = np.full((len(archs), len(objectives)), np.nan)
        for j, o in enumerate(objectives):
            if j not in predicted:
                F[:, j] = [o.sign * out.metrics[o.name].value for out in outcomes]
        G = np.array([[out.constraints.get(c.label, 0.0) for c in constraints] for out in outcomes],
                     dtype=np.float64).reshape(len(archs), len(constraints))
        return F, G

    fast = _cheap_codes(evaluator, predicted)
    return PredictorGuidedSearcher(**common, predicted=predicted, cheap=cheap, cheap_codes=fast,
                                   canonical_codes=_canonical_codes(evaluator.space) if fast else None)


def _canonical_codes(space):
    from hw_profiles.block_table import SpaceCodes

    return SpaceCodes(space).canonical


def _cheap_codes(evaluator: Evaluator, predicted: list[int]):
    """A vectorised ``codes -> (F, G)`` when every cheap objective and constraint has a block table."""
    objectives, constraints = evaluator.objectives, evaluator.constraints
    catalog = evaluator.catalog

    def table(name: str):
        objective = next((o for o in objectives if o.name == name), None)
        metric = name if objective is None else objective.fn
        return catalog.block_table(metric) if isinstance(metric, str) else None

    cols = {j: table(o.name) for j, o in enumerate(objectives) if j not in predicted}
    cons = [(c, table(c.metric)) for c in constraints if evaluator.is_cheap(c.metric)]
    if any(t is None for t in cols.values()) or any(t is None for _, t in cons):
        return None

    def cheap_codes(codes: np.ndarray):
        F = np.full((len(codes), len(objectives)), np.nan)
        for j, t in cols.items():
            F[:, j] = objectives[j].sign * t.evaluate(codes)
        G = np.zeros((len(codes), len(constraints)))
        for c, t in cons:
            G[:, constraints.index(c)] = c.violation(t.evaluate(codes))
        return F, G

    return cheap_codes


def evaluate_claimed(job: Job, evaluator: Evaluator, claimed: Sequence) -> None:
    """Evaluate claimed trials together (batch objectives get them as one list) and record each.
    If the group raises, each trial is evaluated alone so that only the failing ones are recorded
    FAIL, with the error. A trial declared stale meanwhile (this process stalled past the grace
    period) already has a retry queued: its late result is dropped rather than written twice."""
    import optuna

    claimed = list(claimed)
    with job.heartbeat([c.trial_id for c in claimed]):
        try:
            results = _evaluate(evaluator, claimed)
        except NASError:
            raise
        except Exception as err:  # noqa: BLE001 - a user objective failed
            if len(claimed) > 1:
                for one in claimed:
                    evaluate_claimed(job, evaluator, [one])
                return
            results = [(claimed[0], "fail", None, "".join(traceback.format_exception_only(type(err), err)).strip())]
        for c, state, outcome, error in results:
            try:
                if outcome is None:
                    job.finish(c.trial_id, state=state, metrics={}, error=error)
                else:
                    job.finish(c.trial_id, state=state, metrics=outcome.metrics, values=outcome.values,
                               constraints=outcome.constraints)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass


def _evaluate(evaluator: Evaluator, claimed: list) -> list:
    outcomes = evaluator.screen([evaluator.space.parse(c.arch) for c in claimed])
    evaluator.complete(outcomes)  # fills the non-rejected ones in place
    return [(c, "pruned" if o.rejected else "complete", o, None) for c, o in zip(claimed, outcomes)]


def _told_rows(job: Job, evaluator: Evaluator, trials) -> tuple[list[ArchConfig], np.ndarray, np.ndarray]:
    """Searcher-side (minimised) objective and constraint rows of finished trials; NaN for failures."""
    archs = [evaluator.space.parse(t.user_attrs["arch"]) for t in trials]
    F = objective_matrix(trials, evaluator.objectives)
    labels = [c.label for c in evaluator.constraints]
    G = np.array([[t.user_attrs.get("result", {}).get("constraints", {}).get(label, np.nan) for label in labels] for t in trials],
                 dtype=np.float64).reshape(len(trials), len(labels))
    return archs, F, G


def search(space: SearchSpace, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (), *,
           algorithm: str = "nsga2", budget: int = 300, seed: int = 0, storage=None, job: str | None = None,
           batch_size: int | None = None, catalog: MetricCatalog | None = None, evaluate_locally: bool = True,
           progress: bool = True, config_extra: dict | None = None) -> SearchResult:
    """Run (or resume) a search job; see the module docstring. Returns its :class:`SearchResult`."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be an integer >= 1, got {budget!r}")
    evaluator = Evaluator(space, objectives, constraints, catalog=catalog)
    batch = batch_size or min(32, max(4, budget // 10))
    optuna_storage = open_storage(storage)
    name = job or f"{space.name}-{algorithm}-seed{seed}"
    config = job_config(space, evaluator, algorithm=algorithm, budget=budget, seed=seed, extra=config_extra)
    the_job, resumed = Job.open(name, storage=optuna_storage, directions=[o.direction for o in evaluator.objectives],
                                config=config)
    if resumed and the_job.config.get("budget") != budget:
        the_job.update_config(budget=budget)
    searcher = make_searcher(algorithm, evaluator, seed)
    import optuna

    TS = optuna.trial.TrialState
    # trials queued by an interrupted run are finished first, so the warm start sees them too
    the_job.fail_stale()
    _drain_orphans(the_job, evaluator, evaluate_locally)
    finished = latest_trials(the_job.trials(states=(TS.COMPLETE, TS.FAIL, TS.PRUNED)))
    if finished:
        searcher.warm_start(*_told_rows(the_job, evaluator, finished))
    done = sum(t.state != TS.PRUNED for t in finished)
    screened = len(finished)
    bar = tqdm(total=budget, initial=min(done, budget), desc=f"search {name}", unit="eval", disable=not progress,
               dynamic_ncols=True)
    try:
        while done < budget and screened < MAX_REJECT_FACTOR * budget:
            archs = searcher.ask(min(batch, budget - done))
            if not archs:
                break  # the space is exhausted
            screened += len(archs)
            outcomes = evaluator.screen(archs)
            for o in outcomes:
                if o.rejected:
                    the_job.add_pruned(o.arch, metrics=o.metrics, constraints=o.constraints)
            the_job.enqueue([o.arch for o in outcomes if not o.rejected])
            by_id = {t.user_attrs["arch_id"]: t
                     for t in _wait_for(the_job, evaluator, {a.arch_id for a in archs}, evaluate_locally)}
            told = [by_id[a.arch_id] for a in archs]
            searcher.tell(*_told_rows(the_job, evaluator, told))
            done += sum(t.state != TS.PRUNED for t in told)
            bar.update(min(budget, done) - bar.n)
            bar.set_postfix(_front_postfix(SearchResult(the_job, evaluator.objectives, space=space)), refresh=False)
    finally:
        bar.close()
    if hasattr(searcher, "report"):
        the_job.study.set_user_attr("predictor", searcher.report())
    the_job.study.set_user_attr("status", "done" if done >= budget else "stopped")
    return SearchResult(the_job, evaluator.objectives, space=space)


def _drain_orphans(job: Job, evaluator: Evaluator, evaluate_locally: bool) -> None:
    """Finish trials queued by an earlier, interrupted run before proposing new ones."""
    import optuna

    waiting = job.trials(states=(optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING))
    ids = {t.user_attrs.get("arch_id") for t in waiting} - {None}
    if ids:
        _wait_for(job, evaluator, ids, evaluate_locally)


def _wait_for(job: Job, evaluator: Evaluator, arch_ids: set[str], evaluate_locally: bool) -> list:
    """Evaluate (or wait for workers to evaluate) until every arch in ``arch_ids`` has a finished trial."""
    import optuna

    TS = optuna.trial.TrialState
    finished_states = (TS.COMPLETE, TS.FAIL, TS.PRUNED)
    while True:
        # a retried trial has a stale FAIL copy and a newer attempt: the newest decides
        latest = latest_trials(t for t in job.trials() if t.user_attrs.get("arch_id") in arch_ids)
        if len(latest) == len(arch_ids) and all(t.state in finished_states for t in latest):
            return latest
        job.fail_stale()
        # batch objectives get the whole queue at once; otherwise one trial at a time, so that each
        # result is recorded as soon as it exists and no claimed trial waits without heartbeats
        group = len(arch_ids) if any(o.batch for o in evaluator.objectives) else 1
        claimed = []
        while evaluate_locally and len(claimed) < group:
            one = job.claim()
            if one is None:
                break
            claimed.append(one)
        if claimed:
            evaluate_claimed(job, evaluator, claimed)
        else:
            time.sleep(POLL_S)

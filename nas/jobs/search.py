"""``nas.search`` (this module: ``nas.jobs.search``): the search loop over a job store and an evaluator.

``search()`` drives the one ask/tell loop (``nas.searchers.run_ask_tell``) with a
:class:`~nas.searchers.Termination` and an ``evaluate`` step that goes through the job: the
evaluator screens the asked archs with cheap metrics and constraints (rejected ones are recorded
as PRUNED trials and told to the searcher as failures); the rest are queued in the job store,
claimed by this process or by ``nas worker`` processes sharing the storage, and read back as
records when every one of them is finished. ``budget`` counts expensive evaluations (COMPLETE or
FAIL trials); at most ``MAX_REJECT_FACTOR × budget`` archs are screened; the loop also stops when
the space is exhausted. With no ``algorithm`` named (``auto``), a job with an expensive objective
(one :meth:`Evaluator.is_cheap` says is not, e.g. measured accuracy) is searched by ``linas``, one
whose objectives are all cheap by ``nsga2``. Rerunning with the same job name and storage resumes:
finished trials warm-start the searcher and count against the budget; nothing finished is evaluated
again.
Waiting for workers gives up with :class:`WaitTimeoutError` once ``wait_timeout_s`` pass without
any queued trial being evaluated.
"""

from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import numpy as np

from nas.jobs.evaluator import Evaluator
from nas.jobs.lease import driver_lease
from nas.jobs.objectives import Constraint, MetricCatalog, Objective, ObjectiveError
from nas.jobs.predictor_report import prediction_source
from nas.jobs.records import FINISHED, JobConfig, JobObjective, TrialRecord, latest_records
from nas.jobs.results import SearchResult, constraint_matrix, normalised_hypervolume, objective_matrix
from nas.jobs.store import Job, open_storage
from nas.searchers import (
    AUTO_SEARCHER,
    SearcherError,
    Termination,
    create_searcher,
    resolve_searcher,
    run_ask_tell,
    searcher_uses_cheap,
)
from search_spaces import AcceleratorSpace, ArchConfig, NASError, SearchSpace

MAX_REJECT_FACTOR = 20
POLL_S = 0.2
#: How long ``search`` waits for workers when none of its queued trials is being evaluated.
DEFAULT_WAIT_TIMEOUT_S = 1800.0


class WaitTimeoutError(NASError, TimeoutError):
    """Queued trials of a job were not evaluated in time (no worker took them); the message names
    the job, how many trials are still unfinished and what to start."""


def job_config(space: SearchSpace, evaluator: Evaluator, *, algorithm: str, budget: int, seed: int,
               extra: Mapping | None = None) -> JobConfig:
    """What the store records about a job (see ``nas.jobs.store``)."""
    objectives = tuple(JobObjective(name=o.name, direction=o.direction, metric=o.fn if isinstance(o.fn, str) else None)
                       for o in evaluator.objectives)
    return JobConfig(space=space.name, space_version=space.version, objectives=objectives,
                     constraints=tuple(c.label for c in evaluator.constraints), algorithm=algorithm, budget=budget,
                     seed=seed, extra=dict(extra or {}))


def _front_postfix(result: SearchResult) -> dict:
    """Front size and its hypervolume, normalised by the ideal and nadir of every feasible
    evaluation so far (reference 1.1 per objective)."""
    front = result.front_matrix()
    if not len(front):
        return {"front": 0}
    return {"front": len(front), "hv": f"{normalised_hypervolume(front, result.feasible_matrix()):.3f}"}


def make_searcher(algorithm: str, evaluator: Evaluator, seed: int):
    """The registered searcher ``algorithm`` for the evaluator's problem; searchers that use it (linas)
    are offered the evaluator's cheap objectives and constraints (:meth:`Evaluator.cheap_objectives`)."""
    cheap = evaluator.cheap_objectives() if searcher_uses_cheap(algorithm) else None
    try:
        return create_searcher(algorithm, space=evaluator.space, n_objectives=len(evaluator.objectives),
                               n_constraints=len(evaluator.constraints), seed=seed, cheap=cheap)
    except SearcherError as err:  # the searcher cannot work on these objectives
        raise ObjectiveError(f"algorithm {algorithm!r}: {err}") from None


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


def _told_rows(evaluator: Evaluator, records: Sequence[TrialRecord]) -> tuple[list[ArchConfig], np.ndarray, np.ndarray]:
    """Searcher-side (minimised) objective and constraint rows of finished records; NaN for failures."""
    archs = [evaluator.space.parse(dict(r.arch)) for r in records]
    labels = [c.label for c in evaluator.constraints]
    return archs, objective_matrix(records, evaluator.objectives), constraint_matrix(records, labels)


def search(space: SearchSpace, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (), *,
           algorithm: str = AUTO_SEARCHER, budget: int = 300, seed: int = 0, storage=None, job: str | None = None,
           batch_size: int | None = None, catalog: MetricCatalog | None = None, evaluate_locally: bool = True,
           progress: bool = True, config_extra: dict | None = None,
           wait_timeout_s: float | None = DEFAULT_WAIT_TIMEOUT_S, codesign: str = "joint",
           _default_template: bool = False) -> SearchResult:
    """Run (or resume) a search job; see the module docstring. Returns its :class:`SearchResult`.
    ``algorithm``: a registered searcher, or ``auto`` (:func:`~nas.searchers.resolve_searcher`: ``linas``
    when an objective is expensive, ``nsga2`` when all are cheap or ``codesign`` is ``nested``); the
    job records, and its default name uses, the resolved one; a resumed job run with ``auto`` keeps the
    searcher it was created with.
    ``wait_timeout_s`` (None: forever) bounds how long queued trials may sit with nobody evaluating them.
    ``codesign``: how a co-design space (``<space>+hw(<device>)``) is searched, ``joint``, ``nested``
    or ``sequential`` (``nas.jobs.codesign``); ``_default_template`` (internal: the sequential mode's first
    stage) searches the network part on the device's own accelerator."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be an integer >= 1, got {budget!r}")
    if wait_timeout_s is not None and not wait_timeout_s > 0:
        raise ValueError(f"wait_timeout_s must be > 0 seconds or None, got {wait_timeout_s!r}")
    from nas.jobs import codesign as _codesign

    _codesign.check_mode(codesign, space)
    evaluator = Evaluator(space, objectives, constraints, catalog=catalog)
    expensive = not all(evaluator.is_cheap(name) for name in evaluator.names)
    requested, algorithm = algorithm, resolve_searcher(algorithm, expensive=expensive, nested=codesign == "nested")
    common = dict(batch_size=batch_size, catalog=catalog, evaluate_locally=evaluate_locally, progress=progress,
                  config_extra=config_extra, wait_timeout_s=wait_timeout_s, storage=storage)
    if codesign == "sequential" and not _default_template:
        return _codesign.sequential_codesign(space, objectives, constraints, algorithm=algorithm, budget=budget,
                                             seed=seed, job=job, requested=requested, **common)
    name = job or f"{space.name}-{algorithm}-seed{seed}"
    mode = "sequential:network-stage" if _default_template else codesign
    extra = {**(config_extra or {}), "codesign": mode} if isinstance(space, AcceleratorSpace) else config_extra
    the_job, resumed = open_job(name, space, evaluator, algorithm=algorithm, budget=budget, seed=seed,
                                storage=storage, extra=extra, resumed_flag=True)
    if resumed:
        _codesign.check_resumed_mode(the_job, extra)
        algorithm = kept_algorithm(the_job, requested, algorithm)
    if codesign == "joint" and not _default_template:
        searcher = make_searcher(algorithm, evaluator, seed)
    else:
        searcher = _codesign.nested_searcher(algorithm, evaluator, seed, default_template=_default_template)
    waiting = dict(evaluate_locally=evaluate_locally, timeout_s=wait_timeout_s)
    with driver_lease(the_job) as lease:  # a refused second driver changes nothing
        if resumed and the_job.job_config.budget != budget:
            the_job.update_config(budget=budget)
        termination = _resume(the_job, evaluator, searcher, budget, **waiting)
        with _progress(the_job, evaluator, termination, enabled=progress, lease=lease) as on_batch:
            predicted = prediction_source(searcher, evaluator.objectives)
            evaluate = through_the_job(the_job, evaluator, predictions=predicted, **waiting)
            run_ask_tell(searcher, evaluate, termination=termination,
                         batch_size=batch_size or min(32, max(4, budget // 10)), callback=on_batch)
    report = searcher.report()
    if report is not None:
        the_job.save_predictor_report(report)
    the_job.set_status("done" if termination.reason == "budget" else "stopped")
    return SearchResult(the_job, evaluator.objectives, space=space)


def kept_algorithm(job: Job, requested: str, resolved: str) -> str:
    """The searcher a resumed ``job`` goes on with: the one it was created with when the caller asked
    for ``auto`` (``requested``), else ``resolved``."""
    stored = job.job_config.algorithm
    return stored if requested == AUTO_SEARCHER and stored else resolved


def open_job(name: str, space: SearchSpace, evaluator: Evaluator, *, algorithm: str, budget: int, seed: int,
             storage=None, extra: Mapping | None = None, resumed_flag: bool = False):
    """Open or create the job ``name`` in ``storage`` for this evaluator's problem (``(job, resumed)``
    with ``resumed_flag``, else the job)."""
    config = job_config(space, evaluator, algorithm=algorithm, budget=budget, seed=seed, extra=extra)
    opened = Job.open(name, storage=open_storage(storage), directions=[o.direction for o in evaluator.objectives],
                      config=config)
    return opened if resumed_flag else opened[0]


def _resume(job: Job, evaluator: Evaluator, searcher, budget: int, **waiting) -> Termination:
    """Finish trials an interrupted run left queued, warm-start the searcher with every finished
    trial, and count them: the termination rule of this run."""
    job.fail_stale()
    orphans = {r.arch_id for r in job.records(states=("waiting", "running"))} - {None}
    if orphans:
        _wait_for(job, evaluator, orphans, **waiting)
    finished = latest_records(job.records(states=FINISHED))
    if finished:
        searcher.warm_start(*_told_rows(evaluator, finished))
    return Termination(budget, max_asked=MAX_REJECT_FACTOR * budget,
                       evaluated=sum(r.state != "pruned" for r in finished), asked=len(finished))


def through_the_job(job: Job, evaluator: Evaluator, *, predictions=None, **waiting):
    """``evaluate`` for the loop: screen the archs, record the rejected ones PRUNED, queue the rest (with
    what ``predictions(arch_ids)`` predicted for them, ``nas.jobs.predictor_report``), wait until each
    is finished; returns ``(F, G, counted)`` (pruned archs do not count)."""

    def evaluate(archs: list[ArchConfig]):
        outcomes = evaluator.screen(archs)
        for o in outcomes:
            if o.rejected:
                job.add_pruned(o.arch, metrics=o.metrics, constraints=o.constraints)
        queued = [o.arch for o in outcomes if not o.rejected]
        job.enqueue(queued, predicted=predictions([a.arch_id for a in queued]) if predictions else None)
        by_id = {r.arch_id: r for r in _wait_for(job, evaluator, {a.arch_id for a in archs}, **waiting)}
        told = [by_id[a.arch_id] for a in archs]
        _, F, G = _told_rows(evaluator, told)
        return F, G, np.array([r.state != "pruned" for r in told], dtype=bool)

    return evaluate


@contextmanager
def _progress(job: Job, evaluator: Evaluator, termination: Termination, *, enabled: bool, lease=None) -> Iterator:
    """A tqdm bar over the budget; yields the loop's per-batch callback, which also stops the loop
    when the driver ``lease`` (``nas.jobs.lease``) was taken over."""
    from tqdm import tqdm

    budget = termination.budget
    bar = tqdm(total=budget, initial=min(termination.evaluated, budget), desc=f"search {job.name}", unit="eval",
               disable=not enabled, dynamic_ncols=True)

    def on_batch(t: Termination) -> None:
        if lease is not None:
            lease.check()
        bar.update(min(budget, t.evaluated) - bar.n)
        bar.set_postfix(_front_postfix(SearchResult(job, evaluator.objectives, space=evaluator.space)), refresh=False)

    try:
        yield on_batch
    finally:
        bar.close()


def _wait_for(job: Job, evaluator: Evaluator, arch_ids: set[str], *, evaluate_locally: bool,
              timeout_s: float | None = None) -> list[TrialRecord]:
    """Evaluate (or wait for workers to evaluate) until every arch in ``arch_ids`` has a finished trial;
    returns their newest records. :class:`WaitTimeoutError` once ``timeout_s`` pass with none of them
    running and none finishing (None: wait forever)."""
    stalled_since, unfinished_before = time.monotonic(), len(arch_ids)
    while True:
        # a retried trial has a stale FAIL copy and a newer attempt: the newest decides
        latest = latest_records(job.records(arch_ids=arch_ids))
        unfinished = len(arch_ids) - sum(r.finished for r in latest)
        if not unfinished:
            return latest
        if unfinished < unfinished_before or any(r.state == "running" for r in latest):
            stalled_since = time.monotonic()
        unfinished_before = unfinished
        if timeout_s is not None and time.monotonic() - stalled_since > timeout_s:
            raise WaitTimeoutError(
                f"job {job.name!r}: {unfinished} of {len(arch_ids)} queued trial(s) still unfinished after "
                f"{timeout_s:g} s with no worker evaluating them; start workers (nas worker --job {job.name} "
                "--storage URL, with the job's storage), or search with local evaluation")
        job.fail_stale()
        if not (evaluate_locally and _evaluate_some(job, evaluator, len(arch_ids))):
            time.sleep(POLL_S)


def _evaluate_some(job: Job, evaluator: Evaluator, queued: int) -> bool:
    """Claim and evaluate queued trials here; False when there was nothing to claim. Batch objectives
    get the whole queue at once; otherwise one trial at a time, so that each result is recorded as
    soon as it exists and no claimed trial waits without heartbeats."""
    group = queued if any(o.batch for o in evaluator.objectives) else 1
    claimed = []
    while len(claimed) < group:
        one = job.claim()
        if one is None:
            break
        claimed.append(one)
    if claimed:
        evaluate_claimed(job, evaluator, claimed)
    return bool(claimed)

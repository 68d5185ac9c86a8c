"""``job_summaries``: one line's worth of facts about each search job in a storage (``nas jobs``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobSummary:
    """A job's name, space, algorithm, evaluations so far (pruned ones excluded) against its budget,
    status (:attr:`Job.status`) and objective names, as its config recorded them."""

    name: str
    space: str | None
    algorithm: str | None
    evaluated: int
    budget: int | None
    status: str
    objectives: tuple[str, ...]


def job_summaries(storage) -> list[JobSummary]:
    """A :class:`JobSummary` per job in ``storage`` (a URL or an opened storage), in ``list_jobs`` order."""
    from nas.jobs.results import load_job
    from nas.jobs.store import list_jobs, open_storage

    storage = open_storage(storage, read_only=True)
    summaries = []
    for name in list_jobs(storage):
        result = load_job(name, storage=storage)
        trials = result.trials()
        cfg = result.job.job_config
        summaries.append(JobSummary(
            name=name, space=cfg.space, algorithm=cfg.algorithm,
            evaluated=int((trials.state != "pruned").sum()) if len(trials) else 0, budget=cfg.budget,
            status=result.job.status, objectives=tuple(o.name for o in cfg.objectives)))
    return summaries

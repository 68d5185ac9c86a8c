"""``nas worker``: evaluate one job's queued candidates, alongside other workers on any machine.

Contract: ``run_worker(job, storage=)`` claims WAITING trials one at a time (atomically, so no two
workers evaluate the same one), keeps each alive with heartbeats while it evaluates, records the
result, and re-queues trials of workers that died (stale heartbeats). It rebuilds the evaluator
from the config stored in the job (jobs started from a TOML config); a Python caller may pass its
own ``evaluator``. It waits for the job to be created if it does not exist yet. It returns the number of trials it
finished once the job is marked done and nothing is left to claim, or after ``idle_exit_s``
seconds without work (``None``: wait forever).
"""

from __future__ import annotations

import time

from nas.jobs.evaluator import Evaluator
from nas.jobs.search import evaluate_claimed
from nas.jobs.store import Job, StoreError, list_jobs, open_storage


def evaluator_from_job(job: Job) -> Evaluator:
    from nas.jobs.config import SearchConfig

    stored = job.job_config.search_config
    if not stored:
        raise StoreError(f"job {job.name!r} was started from Python with its own objectives; start workers "
                         "from Python too (nas.jobs.worker.run_worker(..., evaluator=...))")
    space, objectives, constraints, catalog, _ = SearchConfig.from_stored(stored).build()
    return Evaluator(space, objectives, constraints, catalog=catalog)


def _wait_for_job(name: str, storage, poll_s: float, timeout_s: float | None, log) -> Job:
    """Workers may start before the coordinator has created the job: wait for it to appear."""
    started, announced = time.monotonic(), False
    while True:
        if name in list_jobs(storage):
            return Job.load(name, storage=storage)
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            return Job.load(name, storage=storage)  # raises StoreError listing the jobs there are
        if not announced:
            log(f"worker: waiting for job {name!r} to be created")
            announced = True
        time.sleep(poll_s)


def run_worker(job_name: str, *, storage, evaluator: Evaluator | None = None, poll_s: float = 0.5,
               idle_exit_s: float | None = None, log=print) -> int:
    """Evaluate queued trials of ``job_name`` until the job is done; returns how many this worker finished."""
    storage = open_storage(storage) if isinstance(storage, str) or storage is None else storage
    job = _wait_for_job(job_name, storage, poll_s, idle_exit_s, log)
    evaluator = evaluator or evaluator_from_job(job)
    finished, idle_since = 0, time.monotonic()
    while True:
        job.fail_stale()
        claimed = job.claim()
        if claimed is not None:
            evaluate_claimed(job, evaluator, [claimed])
            finished += 1
            idle_since = time.monotonic()
            log(f"worker: finished trial {claimed.number} ({finished} so far)")
            continue
        if job.status == "done":
            return finished
        if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
            return finished
        time.sleep(poll_s)

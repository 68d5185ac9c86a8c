"""Faults in real processes on a real SQLite store: every registered searcher killed (SIGKILL) mid-search
and resumed reaches its budget with nothing lost or evaluated twice; two drivers started on one job
at once give one search, the other refused with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import search_toy
from conftest import tally
from nas.jobs.records import latest_records
from nas.jobs.results import load_job
from nas.jobs.store import StoreError
from nas.searchers import list_searchers

TOY = Path(search_toy.__file__)
ROOT = TOY.parents[3]
BUDGET = 16
pytestmark = pytest.mark.slow


def _spawn(url: str, job: str, algorithm: str, log: Path, sleep: float) -> subprocess.Popen:
    env = {**os.environ, "HWNAS_EVAL_LOG": str(log), "HWNAS_EVAL_SLEEP": str(sleep),
           "PYTHONPATH": os.pathsep.join([str(TOY.parent), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(TOY), "coordinator", url, job, str(BUDGET), "local", algorithm],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _records(url: str, job: str) -> list:
    """Every record of ``job`` (none while the store or the job does not exist yet)."""
    try:
        result = load_job(job, storage=url, space=search_toy.SPACE)
    except StoreError as err:
        if any(text in str(err) for text in ("no job store", f"no job {job!r}", "no Optuna tables", "not created by hwnas")):  # not yet
            return []
        raise
    return result.job.records()


def _finished(url: str, job: str) -> list:
    return [r for r in latest_records(_records(url, job)) if r.state in ("complete", "fail")]


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def _lost_and_repeated(url: str, job: str, log: Path, done_before: set[str]) -> tuple[int, int]:
    """``(lost, duplicated)``: evaluations short of the budget, and finished evaluations run again."""
    finished_ids = [r.arch_id for r in _finished(url, job)]
    # every trial that finished with values, not only the newest per arch: a duplicate would be a second one
    complete_ids = [r.arch_id for r in _records(url, job) if r.state == "complete"]
    runs = Counter(log.read_text().split())
    repeated_after_finish = sum(runs[aid] - 1 for aid in done_before if runs[aid] > 1)
    return BUDGET - len(set(finished_ids)), repeated_after_finish + len(complete_ids) - len(set(complete_ids))


@pytest.mark.parametrize("algorithm", list_searchers())
def test_every_searcher_killed_and_resumed_reaches_its_budget_with_nothing_lost_or_repeated(tmp_path, algorithm):
    url, log, job = f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "evals.log", f"killed-{algorithm}"
    first = _spawn(url, job, algorithm, log, sleep=0.1)
    # the evaluation log, not the store: the store is read only once no process is creating it
    _wait_until(lambda: (log.exists() and len(log.read_text().split()) >= 7) or first.poll() is not None, 120,
                "7 evaluations to start")
    assert first.poll() is None, first.stderr.read()
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = {r.arch_id for r in _finished(url, job)}
    resumed = _spawn(url, job, algorithm, log, sleep=0.0)  # at once: the dead driver's lease is no obstacle
    assert resumed.wait(timeout=180) == 0, resumed.stderr.read()
    lost, repeated = _lost_and_repeated(url, job, log, done_before)
    tally("fault", f"search kill+resume ({algorithm})", broken=bool(lost or repeated))
    assert (lost, repeated) == (0, 0)
    assert load_job(job, storage=url, space=search_toy.SPACE).job.status == "done"


def test_two_drivers_on_one_job_give_one_search_and_one_refusal(tmp_path):
    url, log, job = f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "evals.log", "twice"
    procs = [_spawn(url, job, "random", log, sleep=0.25) for _ in range(2)]
    codes = [p.wait(timeout=180) for p in procs]
    errors = [p.stderr.read() for p in procs]
    assert sorted(codes) == [0, 2], errors
    refused = errors[codes.index(2)].strip()
    assert len(refused.splitlines()) == 1 and "already being searched" in refused and "nas worker" in refused
    lost, repeated = _lost_and_repeated(url, job, log, set())
    evaluations = sum(Counter(log.read_text().split()).values())
    tally("fault", "two drivers on one job", broken=bool(lost or repeated or evaluations != BUDGET))
    assert (lost, repeated, evaluations) == (0, 0, BUDGET)

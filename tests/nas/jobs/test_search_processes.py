"""Real processes on a real store: several workers on one job (a SIGKILLed and resumed search, for
every registered searcher, is in tests/hostile/test_search_faults.py).

SQLite runs everywhere; the same worker test runs on PostgreSQL when ``HWNAS_TEST_POSTGRES_URL``
names a server (``.ci/run`` starts one on 127.0.0.1).
"""

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
from nas.jobs.records import latest_records
from nas.jobs.results import load_job

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
pytestmark = pytest.mark.slow


def _spawn(role: str, url: str, job: str, *extra: str, log: Path, sleep: float) -> subprocess.Popen:
    env = {**os.environ, "HWNAS_EVAL_LOG": str(log), "HWNAS_EVAL_SLEEP": str(sleep),
           "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(HERE / "search_toy.py"), role, url, job, *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def _workers_share_one_job(url: str, tmp_path: Path, n_workers: int, kill_one: bool) -> None:
    job, log, slow_log = f"shared-{n_workers}-{int(kill_one)}", tmp_path / "evals.log", tmp_path / "slow.log"
    coordinator = _spawn("coordinator", url, job, "24", "remote", log=log, sleep=0.0)
    workers = [_spawn("worker", url, job, log=log, sleep=0.2) for _ in range(n_workers - int(kill_one))]
    if kill_one:  # a worker that hangs in its first evaluation, then dies: its trial must be retried
        slow = _spawn("worker", url, job, log=slow_log, sleep=600)
        _wait_until(lambda: slow_log.exists() and slow_log.read_text().strip(), 120, "the slow worker to start")
        slow.send_signal(signal.SIGKILL)
        slow.wait()
    assert coordinator.wait(timeout=240) == 0, coordinator.stderr.read()
    for w in workers:
        assert w.wait(timeout=60) == 0, w.stderr.read()
    result = load_job(job, storage=search_toy.storage(url), space=search_toy.SPACE)
    records = result.job.records()
    latest = latest_records(records)
    assert all(r.state in ("complete", "pruned") for r in latest)  # every candidate evaluated
    complete_ids = [r.arch_id for r in latest if r.state == "complete"]
    assert len(complete_ids) == 24 and len(set(complete_ids)) == 24
    evaluations = Counter(log.read_text().split())
    assert max(evaluations.values()) == 1  # no duplicate evaluations among the live workers
    assert set(evaluations) == set(complete_ids)
    if kill_one:
        killed = slow_log.read_text().split()
        assert len(killed) == 1 and killed[0] in evaluations  # the killed worker's trial was retried
        stale = [r for r in records if r.state == "fail" and r.arch_id == killed[0]]
        # optuna's own retry bookkeeping (system attribute failed_trial) is read from its raw trials
        retried = [t for t in result.job.trials() if t.system_attrs.get("failed_trial") == stale[0].number]
        assert len(stale) == 1 and len(retried) == 1 and retried[0].state.name == "COMPLETE"


def test_two_workers_on_sqlite(tmp_path):
    _workers_share_one_job(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path, 2, kill_one=False)


@pytest.mark.postgres
def test_three_workers_on_postgresql_one_killed(tmp_path):
    url = os.environ.get("HWNAS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("HWNAS_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL on 127.0.0.1 and sets it)")
    _workers_share_one_job(url, tmp_path, 3, kill_one=True)

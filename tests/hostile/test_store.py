"""The job store under bad values and damaged rows, read-only commands, and the driver lease.

A NaN used to reach Optuna's RDB storage through a call that skips its NaN check, after which every
command on any job of that store failed with an AssertionError; these tests pin the fix on a real
SQLite store."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import warnings

import pytest

import search_toy
from conftest import tally
from nas._process import process_namespace
from nas.jobs.lease import LEASE_KEY, DriverRunningError, Holder, acquire, driver_lease
from nas.jobs.objectives import Objective
from nas.jobs.search import search
from nas.jobs.store import Job, StoreError, StoreWarning, list_jobs, open_storage


def _nan_sometimes(arch) -> float:
    return float("nan") if arch.to_dict()["a"] == 2 else search_toy.quality(arch)


def _inf_spread(arch):
    from hw_profiles import Metric

    return Metric(value=1.0, unit="ms", source="measured", profile="x@1", spread=float("inf"))


def _search(url: str, job: str, budget: int, objectives=None, **kw):
    objectives = objectives or search_toy.objectives()
    return search(search_toy.SPACE, objectives, search_toy.constraints(), algorithm="random", budget=budget,
                  seed=0, storage=search_toy.storage(url), job=job, progress=False, **kw)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'nas.db'}"


def test_a_nan_objective_fails_its_trial_with_the_reason_and_the_store_stays_readable(url, tmp_path, capsys):
    objectives = [Objective("quality", _nan_sometimes, direction="maximize"),
                  Objective("size", search_toy.size, cheap=True)]
    result = _search(url, "nan", 40, objectives)
    failed = [r for r in result.job.records() if r.state == "fail"]
    assert failed and all("non-finite" in r.error and "quality" in r.error for r in failed)
    assert all(r.arch["a"] == 2 for r in failed)
    # nothing non-finite was written: every stored value and attribute is strict JSON / a number
    with sqlite3.connect(tmp_path / "nas.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM trial_values WHERE value IS NULL").fetchone()[0] == 0
        for (text,) in conn.execute("SELECT value_json FROM trial_user_attributes"):
            json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} stored in a trial attribute"))
    # every command on the store still works; the job resumes to its budget
    from nas.cli import main

    assert main(["jobs", "--storage", url]) == 0
    assert "nan" in capsys.readouterr().out
    resumed = _search(url, "nan", 60, objectives)
    assert sum(r.state in ("complete", "fail") for r in resumed.job.records()) == 60
    tally("cli", "search (NaN objective)", broken=False)


def test_a_non_finite_spread_fails_the_trial_too(url):
    objectives = [Objective("quality", search_toy.quality, direction="maximize"),
                  Objective("lat", _inf_spread), Objective("size", search_toy.size, cheap=True)]
    result = _search(url, "spread", 5, objectives)
    records = result.job.records()
    assert records and all(r.state == "fail" and "spread" in r.error for r in records if r.state != "pruned")


def _damage(db, *, null_values: int, malformed_results: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE trial_values SET value = NULL WHERE trial_value_id IN "
                     "(SELECT trial_value_id FROM trial_values ORDER BY trial_value_id LIMIT ?)", (null_values,))
        conn.execute("UPDATE trial_user_attributes SET value_json = '{\"metrics\": 5}' WHERE key = 'result' AND "
                     "trial_id IN (SELECT trial_id FROM trials ORDER BY trial_id DESC LIMIT ?)", (malformed_results,))


def test_a_store_with_damaged_rows_is_listed_read_and_resumed_with_a_warning(url, tmp_path, capsys):
    """A store an older hwnas (or someone else) damaged: bad rows are skipped with a warning, the
    rest is read, and a resumed search reaches its budget without waiting on the skipped rows."""
    _search(url, "old", 20)
    _damage(tmp_path / "nas.db", null_values=2, malformed_results=1)
    from nas.cli import main

    capsys.readouterr()
    assert main(["jobs", "--storage", url]) == 0
    out, err = capsys.readouterr()
    assert "old" in out
    warned = [line for line in err.splitlines() if line.startswith("nas jobs: warning: job 'old': skipped 1 damaged")]
    assert len(warned) == 2 and len(err.splitlines()) == 2  # one line per kind of damage, nothing else
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        resumed = _search(url, "old", 30, wait_timeout_s=30)
        counted = [r for r in resumed.job.records() if r.state in ("complete", "fail")]
    assert len(counted) == 30  # the two skipped rows are re-evaluated: the budget counts what is readable
    assert resumed.job.status == "done"


@pytest.mark.parametrize("command", [["jobs"], ["pareto", "j"], ["export", "--job", "j", "--trial", "0"]],
                         ids=["jobs", "pareto", "export"])
@pytest.mark.parametrize("what", ["missing", "empty", "text", "foreign-sqlite"])
def test_read_only_commands_refuse_what_is_not_a_store_and_create_nothing(hostile_cli, tmp_path, command, what):
    path = tmp_path / "store.db"
    if what == "empty":
        path.write_bytes(b"")
    elif what == "text":
        path.write_text("not a database\n")
    elif what == "foreign-sqlite":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes (x)")
    extra = ["--out", str(tmp_path / "out")] if command[0] == "export" else []
    hostile_cli([*command, "--storage", f"sqlite:///{path}", *extra], watch=[tmp_path], contains="store")


def test_a_job_read_through_a_read_only_store_refuses_writes_and_changes_nothing(url, tmp_path):
    _search(url, "ro", 6)
    before = (tmp_path / "nas.db").stat().st_mtime_ns
    from nas.jobs.results import load_job

    result = load_job("ro", storage=url, space=search_toy.SPACE)
    assert len(result.job.records()) >= 6
    with pytest.raises(StoreError, match="opened read-only"):
        result.job.set_status("running")
    assert (tmp_path / "nas.db").stat().st_mtime_ns == before


# ------------------------------------------------------------------------------------ the lease
def _job(url: str, name: str = "leased") -> Job:
    _search(url, name, 4)
    return Job.load(name, storage=search_toy.storage(url))


def _forge(job: Job, holder: Holder) -> None:
    from sqlalchemy import text

    with job.storage._backend.engine.begin() as conn:
        conn.execute(text("DELETE FROM study_user_attributes WHERE key = :k"), {"k": LEASE_KEY})
        conn.execute(text("INSERT INTO study_user_attributes (study_id, key, value_json) VALUES (:s, :k, :v)"),
                     {"s": job.study_id, "k": LEASE_KEY, "v": holder.to_json()})


def test_a_second_driver_is_refused_while_the_first_holds_the_lease(url):
    job = _job(url)
    with driver_lease(job) as lease:
        assert lease is not None
        with pytest.raises(DriverRunningError, match=rf"already being searched by pid {os.getpid()}.*nas worker"):
            _search(url, "leased", 8)
        assert Job.load("leased", storage=search_toy.storage(url)).job_config.budget == 4  # left as it was
    assert len(list_jobs(open_storage(url))) == 1
    _search(url, "leased", 8)  # released: the next driver takes it


def test_a_lease_of_a_dead_process_on_this_host_is_taken_at_once(url):
    job = _job(url)
    _forge(job, Holder(host=socket.gethostname(), pid=2**22 + 12345, started=1.0, beat=time.time(),
                       namespace=process_namespace()))
    assert acquire(job, grace_s=30) is not None


def test_a_dead_pid_of_another_pid_namespace_on_this_host_name_is_not_taken_for_gone(url):
    """Containers sharing a host name (--net=host) do not share pids: only the heartbeat decides."""
    job = _job(url)
    _forge(job, Holder(host=socket.gethostname(), pid=2**22 + 12345, started=1.0, beat=time.time(),
                       namespace="0ther-ns"))
    with pytest.raises(DriverRunningError):
        acquire(job, grace_s=30)


def test_a_store_whose_writer_was_killed_mid_write_is_still_read(url, tmp_path, capsys):
    """A SIGKILL inside a write transaction leaves a hot journal that only a writable connection can
    roll back; the read-only commands still read the store (and roll it back)."""
    _search(url, "hot", 6)
    killed_writer = ("import os, sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('PRAGMA cache_size=1')\n"
                     "c.execute('BEGIN')\nfor i in range(3000):\n"
                     "    c.execute('INSERT INTO study_user_attributes (study_id, key, value_json) VALUES (1, ?, ?)',"
                     " (f'k{i}', '\"' + 'x' * 500 + '\"'))\nos._exit(9)\n")
    subprocess.run([sys.executable, "-c", killed_writer, str(tmp_path / "nas.db")], check=False)
    assert (tmp_path / "nas.db-journal").exists()
    from nas.cli import main

    capsys.readouterr()
    assert main(["jobs", "--storage", url]) == 0
    assert "hot" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "nas.db") as conn:  # the interrupted write was rolled back
        assert conn.execute("SELECT COUNT(*) FROM study_user_attributes WHERE key LIKE 'k%'").fetchone()[0] == 0


def test_a_live_lease_of_another_host_is_respected_and_an_expired_one_taken(url):
    job = _job(url)
    _forge(job, Holder(host="elsewhere", pid=1, started=1.0, beat=time.time()))
    with pytest.raises(DriverRunningError, match="pid 1 on elsewhere"):
        acquire(job, grace_s=30)
    _forge(job, Holder(host="elsewhere", pid=1, started=1.0, beat=time.time() - 31))
    assert acquire(job, grace_s=30) is not None


def test_a_renewed_lease_still_names_its_holder_whole(url):
    job = _job(url)
    lease = acquire(job, grace_s=30)
    before = Holder.from_json(lease._held)
    lease.beat()
    after = Holder.from_json(lease._held)
    assert after == dataclasses.replace(before, beat=after.beat) and after.beat >= before.beat
    assert after.namespace == process_namespace()


def test_a_driver_whose_lease_was_taken_over_stops(url):
    job = _job(url)
    lease = acquire(job, grace_s=30)
    _forge(job, Holder(host="elsewhere", pid=1, started=1.0, beat=time.time()))
    lease.beat()
    with pytest.raises(DriverRunningError, match="took over"):
        lease.check()

"""One driver per job: a lease with a heartbeat, kept in the job's own store.

Contract:
* A search loop over a job (``nas search``, ``nas.search``, the pipeline's search stage) runs inside
  :func:`driver_lease`. The lease is one row of Optuna's ``study_user_attributes`` table (key
  :data:`LEASE_KEY`) naming the driver's host, pid, process start time and last heartbeat.
* Taking it is atomic in SQLite and PostgreSQL alike: an ``INSERT`` that the table's unique
  ``(study_id, key)`` constraint refuses when a lease exists, and an ``UPDATE ... WHERE value_json =
  <the lease read>`` (compare-and-set) to take over an expired one. The holder renews it every
  ``heartbeat_s`` with the same compare-and-set, and deletes it when the loop ends.
* A lease has expired when its heartbeat is older than ``grace_s``, or at once when its holder ran in
  this host's pid namespace (``nas._process``) and that process is gone (killed; the pid is matched
  with its start time, so a reused pid does not hold the lease). Heartbeats are stamped with each
  driver's own clock: hosts sharing a PostgreSQL store need clocks within ``grace_s`` of each other. A live lease makes a second driver stop with :class:`DriverRunningError`
  (one line naming the driver and the ``nas worker`` command that helps it instead); workers never
  take the lease.
* A holder whose renewal finds another lease (it stalled past ``grace_s`` and was taken over), or
  whose renewals have failed for ``grace_s``, sets :attr:`Lease.lost`; the loop stops with :class:`DriverRunningError` at its next batch rather than
  run beside the new driver.
* In-memory storages (one process) need no lease.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from nas._process import process_namespace
from nas.jobs.store import Job, StoreError

LEASE_KEY = "hwnas-driver"


class DriverRunningError(StoreError):
    """Another process is driving this job (or took it over from this one)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as stored (JSON) in the job's store."""

    host: str
    pid: int
    started: float  # the process's start time (epoch seconds): tells a reused pid apart
    beat: float  # last heartbeat (epoch seconds)
    namespace: str = ""  # nas._process.process_namespace(): whose pids this pid can be compared with

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "started": self.started, "beat": self.beat,
                           "namespace": self.namespace})

    @classmethod
    def from_json(cls, text: str | None) -> "Holder | None":
        """The stored holder, or None for a row that is not one (damaged: treated as expired)."""
        try:
            blob = json.loads(text or "")
            return cls(host=str(blob["host"]), pid=int(blob["pid"]), started=float(blob["started"]),
                       beat=float(blob["beat"]), namespace=str(blob.get("namespace", "")))
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self, now: float) -> str:
        return f"pid {self.pid} on {self.host} (last heartbeat {max(0.0, now - self.beat):.0f} s ago)"


def _this_process(now: float) -> Holder:
    import psutil

    return Holder(host=socket.gethostname(), pid=os.getpid(), started=psutil.Process().create_time(), beat=now,
                  namespace=process_namespace())


def _gone(holder: Holder) -> bool:
    """Whether ``holder`` ran in this host's pid namespace and its process no longer exists."""
    import psutil

    if holder.namespace != process_namespace():
        return False
    try:
        return abs(psutil.Process(holder.pid).create_time() - holder.started) > 1.0
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.Error:
        return False


class Lease:
    """A held lease; renew with :meth:`beat`, give back with :meth:`release` (see the module doc)."""

    def __init__(self, job: Job, engine, holder: Holder) -> None:
        self.job, self._engine, self._held = job, engine, holder.to_json()
        self.lost = threading.Event()

    def beat(self) -> None:
        """Renew the heartbeat; sets :attr:`lost` when the lease is no longer this process's."""
        fresh = dataclasses.replace(Holder.from_json(self._held), beat=time.time()).to_json()
        if _swap(self._engine, self.job.study_id, self._held, fresh):
            self._held = fresh
        else:
            self.lost.set()

    def release(self) -> None:
        from sqlalchemy import text

        with self._engine.begin() as conn:
            conn.execute(text("DELETE FROM study_user_attributes WHERE study_id = :sid AND key = :key "
                              "AND value_json = :old"), {"sid": self.job.study_id, "key": LEASE_KEY, "old": self._held})

    def check(self) -> None:
        """:class:`DriverRunningError` once the lease was taken over."""
        if self.lost.is_set():
            raise DriverRunningError(f"job {self.job.name!r}: another process took over this search (this one "
                                     "stalled longer than the lease's grace period); it stops here, nothing "
                                     "finished is lost")


def _swap(engine, study_id: int, old: str, new: str) -> bool:
    """Compare-and-set of the lease row: True when it held ``old`` and now holds ``new``."""
    from sqlalchemy import text

    with engine.begin() as conn:
        done = conn.execute(text("UPDATE study_user_attributes SET value_json = :new WHERE study_id = :sid "
                                 "AND key = :key AND value_json = :old"),
                            {"new": new, "sid": study_id, "key": LEASE_KEY, "old": old})
        return done.rowcount == 1


def _read(engine, study_id: int) -> str | None:
    from sqlalchemy import text

    with engine.begin() as conn:
        row = conn.execute(text("SELECT value_json FROM study_user_attributes WHERE study_id = :sid AND key = :key"),
                           {"sid": study_id, "key": LEASE_KEY}).first()
    return None if row is None else row[0]


def acquire(job: Job, *, grace_s: float) -> Lease | None:
    """Take the job's lease (None for storages without one); :class:`DriverRunningError` when a live
    driver holds it."""
    from sqlalchemy import exc, text

    engine = getattr(getattr(job.storage, "_backend", job.storage), "engine", None)
    if engine is None:
        return None
    for _ in range(5):  # another process may change the row between our read and our swap: look again
        now = time.time()
        mine = _this_process(now)
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO study_user_attributes (study_id, key, value_json) "
                                  "VALUES (:sid, :key, :val)"),
                             {"sid": job.study_id, "key": LEASE_KEY, "val": mine.to_json()})
            return Lease(job, engine, mine)
        except exc.IntegrityError:
            pass
        stored = _read(engine, job.study_id)
        holder = Holder.from_json(stored)
        if holder is not None and now - holder.beat <= grace_s and not _gone(holder):
            raise DriverRunningError(
                f"job {job.name!r} is already being searched by {holder.describe(now)}; to help it, start "
                f"`nas worker --job {job.name} --storage {job.url or 'URL'}`; its lease expires {grace_s:g} s after its last "
                "heartbeat")
        if stored is not None and _swap(engine, job.study_id, stored, mine.to_json()):
            return Lease(job, engine, mine)
        time.sleep(0.05)
    raise DriverRunningError(f"job {job.name!r}: could not take its driver lease (other processes keep "
                             "changing it); try again")


def lease_timing(job: Job) -> tuple[float, float]:
    """``(heartbeat_s, grace_s)`` of the lease: those the storage uses for trial heartbeats."""
    backend = getattr(job.storage, "_backend", job.storage)
    beat = getattr(backend, "heartbeat_interval", None) or 10
    return float(beat), float(getattr(backend, "grace_period", None) or 3 * beat)


@contextmanager
def driver_lease(job: Job) -> Iterator[Lease | None]:
    """Hold the job's lease for the block, renewing it at the storage's heartbeat interval and
    expiring after its grace period (:func:`lease_timing`; see the module doc)."""
    heartbeat_s, grace_s = lease_timing(job)
    lease = acquire(job, grace_s=grace_s)
    if lease is None:
        yield None
        return
    stop = threading.Event()

    def renew() -> None:
        renewed = time.monotonic()
        while not stop.wait(heartbeat_s):
            try:
                lease.beat()
                renewed = time.monotonic()
            except Exception:  # noqa: BLE001 - a store hiccup: the next beat retries...
                if time.monotonic() - renewed > grace_s:  # ...until the lease may have been taken
                    lease.lost.set()

    thread = threading.Thread(target=renew, name="hwnas-lease", daemon=True)
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join()
        try:
            lease.release()
        except Exception:  # noqa: BLE001 - an unreachable store: the lease expires by itself
            pass

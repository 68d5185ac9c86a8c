"""The job store: a search job is an Optuna study; every evaluated architecture is one trial.

Contract:
* ``storage`` is ``None`` (in memory, this process only), an Optuna storage URL
  (``sqlite:///nas.db``, ``postgresql://user@127.0.0.1/db``) or a storage object. URL storages are
  Optuna ``RDBStorage``s with heartbeats: a trial whose process dies (SIGKILL) stops beating, is
  marked FAIL after ``grace_s`` by :meth:`Job.fail_stale` and re-queued as WAITING (Optuna's
  ``RetryHeartbeatStaleTrialCallback``), so no candidate is lost.
* Candidates are queued as WAITING trials (:meth:`Job.enqueue`, each ``arch_id`` at most once per
  job) and claimed atomically by one process each (:meth:`Job.claim`: WAITING→RUNNING is a
  compare-and-set in the storage, so two workers never evaluate the same trial).
* A finished trial records, as user attributes: ``arch_id``, ``arch`` (``{setting: value}``) and
  ``result``: ``metrics`` (``{name: {value, unit, source, profile, spread}}``), ``constraints``
  (``{label: violation}``, ``<= 0`` satisfied), ``feasible`` and, for failures, ``error``; its values are the objectives in
  the job's order and directions. Optuna's ``constraints`` system attribute is set too, so
  optuna-dashboard shows feasibility. PRUNED means rejected by a cheap constraint before any
  expensive evaluation; FAIL means the evaluation raised (see ``result.error``). A trial that a
  model-guided searcher (linas) proposed also holds ``predicted`` (``{objective: {mean, var}}``, the
  objective's own units), written when it is queued, i.e. before it is evaluated.
* The job's own record (study user attribute ``hwnas``) holds its config: space name and version,
  objectives, constraints, algorithm, seed, budget, profiles, checkpoint hash. Beside it: ``status``
  (``done`` or ``stopped`` once a search returns), ``predictor`` (linas' report) and ``report``.
* Trials are read back as :class:`~nas.jobs.records.TrialRecord` (:meth:`Job.records`), the job's
  record as :class:`~nas.jobs.records.JobConfig` (:attr:`Job.job_config`).
"""

from __future__ import annotations

import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Collection, Iterator, Mapping, Sequence

from hw_profiles import Metric
from nas.jobs._store_values import (existing_store_url, finite_json, finite_only, finite_predictions, is_finite,
                                     readable_trials)
from nas.jobs.records import STATES, JobConfig, JobRecordError, TrialRecord, arch_id_of
from search_spaces import ArchConfig, NASError

JOB_ATTR = "hwnas"


class StoreError(NASError, ValueError):
    """A job or storage is missing, unreachable or does not match what was asked."""


class StoreWarning(UserWarning):
    """A store holds rows hwnas cannot read (damaged, or written by something else); they are skipped."""


def _optuna():
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeats and stale-trial retry are marked experimental since optuna 2.8; we rely on them knowingly
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def open_storage(storage, *, heartbeat_s: int = 10, grace_s: int = 30, read_only: bool = False):
    """An Optuna storage for ``storage`` (see the module docstring). ``read_only`` (listing, reading
    fronts, exporting): the store must already exist (a SQLite file is checked to be a job store, so
    nothing is created), and a :class:`Job` read through it refuses every write with one line."""
    optuna = _optuna()
    if storage is None:
        return optuna.storages.InMemoryStorage()
    if not isinstance(storage, str):
        return storage
    if not storage.startswith(("sqlite://", "postgresql://", "postgresql+", "mysql://", "mysql+")):
        raise StoreError(f"storage must be a URL like sqlite:///nas.db or postgresql://USER@HOST/DB, got {storage!r}")
    url = existing_store_url(storage, StoreError) if read_only else storage
    for attempt in range(3):  # processes opening a fresh database together race to create its tables
        try:
            opened = optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
            opened.hwnas_read_only = read_only  # Job's write methods refuse with one line (not a driver error)
            return opened
        except Exception as err:  # noqa: BLE001 - driver errors vary (sqlalchemy, psycopg)
            racing = any(text in str(err) for text in ("already exists", "duplicate key", "UniqueViolation",
                                                       "UNIQUE constraint failed", "database is locked"))
            if attempt == 2 or not racing:
                raise StoreError(f"cannot open storage {storage!r}: {type(err).__name__}: "
                                 f"{str(err).splitlines()[0]}") from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Claimed:
    """A trial this process owns: evaluate ``arch`` and :meth:`Job.finish` it."""

    trial_id: int
    number: int
    arch: dict


def _study_storage(study):
    """The storage object ``study`` reads and writes through. Optuna has no public accessor for it,
    and no public call that sets another trial's state (a claim's compare-and-set, a worker's result)
    or records a heartbeat except through the storage; the study wraps an ``RDBStorage`` in its own
    cache, so claims and results must go through that same object, not the one we passed in."""
    return study._storage


class Job:
    """One search job in a storage. Build with :meth:`create`, :meth:`load` or :meth:`open`."""

    def __init__(self, study, *, url: str = "") -> None:
        self.study = study
        self.storage = _study_storage(study)
        self.url = url  # the storage URL when known (SQLite claims lock a file beside the database)
        self.name = study.study_name
        self.study_id = self.storage.get_study_id_from_name(self.name)
        stored = study.user_attrs.get(JOB_ATTR, {})
        self._stored = dict(stored) if isinstance(stored, dict) else stored  # not a dict: job_config says so
        self._warned: set[str] = set()
        self.read_only = bool(getattr(getattr(self.storage, "_backend", self.storage), "hwnas_read_only", False))

    @property
    def job_config(self) -> JobConfig:
        """The job's own record, typed (see :class:`~nas.jobs.records.JobConfig`); ``JobRecordError``
        naming the job when the stored record is malformed."""
        try:
            return JobConfig.from_json(self._stored)
        except JobRecordError as err:
            raise JobRecordError(f"job {self.name!r}: {err}") from None

    @property
    def config(self) -> dict:
        """The job's own record as stored (a copy; read :attr:`job_config` instead)."""
        return dict(self._stored) if isinstance(self._stored, dict) else {}

    # ------------------------------------------------------------- opening
    @classmethod
    def create(cls, name: str, *, storage, directions: Sequence[str], config: JobConfig) -> "Job":
        optuna = _optuna()
        try:
            study = optuna.create_study(study_name=name, storage=storage, directions=list(directions))
        except optuna.exceptions.DuplicatedStudyError:
            raise StoreError(f"job {name!r} already exists in this storage; load it to resume") from None
        study.set_user_attr(JOB_ATTR, finite_json(config.to_json()))
        return cls(study, url=_url(storage))

    @classmethod
    def load(cls, name: str, *, storage) -> "Job":
        optuna = _optuna()
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            known = list_jobs(storage)
            raise StoreError(f"no job {name!r} in this storage; jobs: {known or 'none'}") from None
        if JOB_ATTR not in study.user_attrs:
            raise StoreError(f"study {name!r} was not created by hwnas (no {JOB_ATTR!r} record)")
        return cls(study, url=_url(storage))

    @classmethod
    def open(cls, name: str, *, storage, directions: Sequence[str], config: JobConfig) -> tuple["Job", bool]:
        """Load ``name`` if it exists (``resumed=True``), else create it. A resumed job must have been
        created with the same space and objectives."""
        if name not in list_jobs(storage):
            try:
                return cls.create(name, storage=storage, directions=directions, config=config), False
            except StoreError:  # another process created it meanwhile: resume it like any existing job
                pass
        job = cls._load_created(name, storage)
        for key in ("space", "space_version", "objectives", "constraints"):
            if getattr(job.job_config, key) != getattr(config, key):
                raise StoreError(f"job {name!r} exists with another {key} ({job._stored.get(key)!r}, now "
                                 f"{config.to_json()[key]!r}); choose a new --job name")
        return job, True

    @classmethod
    def _load_created(cls, name: str, storage) -> "Job":
        """:meth:`load`, waiting up to 2 s for a job another process is creating (its study exists
        a moment before its record)."""
        for _ in range(20):
            try:
                return cls.load(name, storage=storage)
            except StoreError as err:
                if "was not created by hwnas" not in str(err):
                    raise
                time.sleep(0.1)
        return cls.load(name, storage=storage)

    def update_config(self, **changes) -> None:
        """Change recorded settings of a resumed job (e.g. a larger budget); other keys stay as stored."""
        self._writable()
        self._stored.update(changes)
        self.study.set_user_attr(JOB_ATTR, finite_json(dict(self._stored)))

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"job {self.name!r} was opened read-only (nas jobs, nas pareto, nas.load_job); "
                             "open it with nas.load_job(..., read_only=False) to change it")

    @property
    def status(self) -> str:
        """``done`` (the budget was reached), ``stopped`` (the search returned early) or ``running``
        (no search has returned yet: it runs, or was killed)."""
        return str(self.study.user_attrs.get("status", "running"))

    def set_status(self, status: str) -> None:
        self._writable()
        if status not in ("done", "stopped", "running"):
            raise ValueError(f"status must be done, stopped or running, got {status!r}")
        self.study.set_user_attr("status", status)

    @property
    def predictor_report(self) -> dict | None:
        """What a predictor-guided searcher (linas) recorded about its predictor, else None."""
        return self.study.user_attrs.get("predictor")

    def save_predictor_report(self, report: dict) -> None:
        self._writable()
        self.study.set_user_attr("predictor", finite_json(dict(report)))

    def save_report(self, report: dict) -> None:
        """Record the search report (``report.json``'s content) with the job."""
        self._writable()
        self.study.set_user_attr("report", finite_json(report))

    def save_sequential_report(self, report: dict) -> None:
        """Record the joint-vs-sequential quantization comparison with the job."""
        self._writable()
        self.study.set_user_attr("sequential_report", finite_json(report))

    # ------------------------------------------------------------ queueing
    def trials(self, states=None) -> list:
        """The raw Optuna ``FrozenTrial`` objects (prefer :meth:`records`). Rows Optuna cannot read
        (a damaged store, e.g. a NaN value written by an older hwnas) are skipped with a
        :class:`StoreWarning`, so one bad row never makes a whole job unreadable."""
        try:
            return self.study.get_trials(deepcopy=False, states=states)
        except (AssertionError, ValueError, TypeError, KeyError):
            trials, skipped = readable_trials(self.storage, self.study_id, states)
            self._warn_skipped(skipped, "Optuna cannot read them")
            return trials

    def _warn_skipped(self, skipped: int, why: str) -> None:
        """One warning per job object and reason (polling loops read the trials again and again)."""
        if skipped and why not in self._warned:
            self._warned.add(why)
            warnings.warn(f"job {self.name!r}: skipped {skipped} damaged trial row(s) ({why}); the store was "
                          "written by something else or damaged", StoreWarning, stacklevel=3)

    def records(self, states: Sequence[str] | None = None, *, arch_ids: Collection[str] | None = None
                ) -> list[TrialRecord]:
        """Every trial as a :class:`TrialRecord`, in number order; ``states`` (``complete``, ``pruned``,
        ``fail``, ``running``, ``waiting``) and ``arch_ids`` keep only those."""
        trials = self.trials(_trial_states(states))
        if arch_ids is not None:
            trials = [t for t in trials if arch_id_of(t) in arch_ids]
        records = []
        for trial in trials:
            try:
                records.append(TrialRecord.from_trial(trial))
            except (KeyError, TypeError, ValueError, AttributeError):
                records.append(None)
        self._warn_skipped(records.count(None), "their hwnas attributes are malformed")
        return [r for r in records if r is not None]

    def arch_ids(self) -> set[str]:
        """Every arch_id queued, running or finished in this job (in a readable trial: the arch of a
        damaged row is queued again, like one never evaluated)."""
        return {r.arch_id for r in self.records()} - {None}

    def enqueue(self, archs: Sequence[ArchConfig], *, predicted: Mapping[str, Mapping] | None = None) -> int:
        """Queue archs not yet in the job; returns how many were queued. ``predicted`` (by ``arch_id``):
        ``{objective: {"mean", "var"}}`` a searcher predicted before evaluation, stored as the trial's
        ``predicted`` attribute (only finite means with finite variances > 0 are written)."""
        self._writable()
        known = self.arch_ids()
        queued = 0
        for arch in archs:
            if arch.arch_id in known:
                continue
            attrs = {"arch_id": arch.arch_id, "arch": arch.to_dict()}
            kept = finite_predictions((predicted or {}).get(arch.arch_id))
            if kept:
                attrs["predicted"] = {name: {"mean": mean, "var": var} for name, (mean, var) in kept.items()}
            self.study.enqueue_trial({}, user_attrs=attrs)
            known.add(arch.arch_id)
            queued += 1
        return queued

    def claim(self) -> Claimed | None:
        """Atomically take one WAITING trial (None when the queue is empty)."""
        self._writable()
        with self._claim_lock():
            return self._claim()

    @contextmanager
    def _claim_lock(self) -> Iterator[None]:
        """PostgreSQL locks the claimed row (SELECT ... FOR UPDATE); SQLite ignores that, so two
        processes could both read WAITING and both take the trial. SQLite files are local, so an
        exclusive file lock beside the database serialises claims there."""
        url = self.url
        if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
            yield
            return
        import fcntl

        with open(url[len("sqlite:///"):] + ".claim-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _claim(self) -> Claimed | None:
        optuna = _optuna()
        for trial in self.trials(states=(optuna.trial.TrialState.WAITING,)):
            try:
                arch = dict(TrialRecord.from_trial(trial).arch)  # a malformed row is never claimed
            except (KeyError, TypeError, ValueError, AttributeError):
                self._warn_skipped(1, "a queued trial's hwnas attributes are malformed")
                continue
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
            beats = bool(getattr(self.storage, "get_heartbeat_interval", lambda: None)())
            if beats:  # before the claim too: Optuna never declares a RUNNING trial without any heartbeat
                self.storage.record_heartbeat(trial_id)  # stale, so a kill right after the claim would strand it
            try:
                if not self.storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.RUNNING):
                    continue  # another process took it first
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            if beats:  # fresh again for the evaluation that follows
                self.storage.record_heartbeat(trial_id)
            return Claimed(trial_id, trial.number, arch)
        return None

    @contextmanager
    def heartbeat(self, trial_ids: Sequence[int]) -> Iterator[None]:
        """Keep the trials alive (RDB storages) while the body evaluates them."""
        interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        if not interval:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.is_set():
                for trial_id in trial_ids:
                    self.storage.record_heartbeat(trial_id)
                stop.wait(interval)

        thread = threading.Thread(target=beat, name="hwnas-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def fail_stale(self) -> None:
        """Mark trials whose process stopped beating FAIL and re-queue them (RDB storages only)."""
        _optuna().storages.fail_stale_trials(self.study)

    # ------------------------------------------------------------ finishing
    def add_pruned(self, arch: ArchConfig, *, metrics: Mapping[str, Metric], constraints: Mapping[str, float]) -> None:
        """Record an arch rejected by a cheap constraint, as a finished PRUNED trial."""
        self._writable()
        optuna = _optuna()
        metrics, constraints, bad = finite_only(metrics, constraints)
        result = _result("pruned", metrics, constraints)
        if bad:
            result["error"] = f"non-finite cheap value(s) not recorded: {bad}"
        attrs = {"arch_id": arch.arch_id, "arch": arch.to_dict(), "result": result}
        self.study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED, user_attrs=attrs,  # Optuna reads constraints by position
            system_attrs={"constraints": list(constraints.values())} if constraints and not bad else None))

    def finish(self, trial_id: int, *, state: str, metrics: Mapping[str, Metric], values: Sequence[float] | None = None,
               constraints: Mapping[str, float] | None = None, error: str | None = None) -> None:
        """Record one evaluation: ``state`` is ``complete``, ``pruned`` or ``fail``. Every value is
        checked first: a non-finite objective, metric or constraint value (NaN, inf, not a number)
        makes the trial FAIL, with the names of the bad values as its error, and is not written."""
        self._writable()
        optuna = _optuna()
        metrics, constraints, bad = finite_only(metrics, dict(constraints or {}))
        if state == "complete":
            values = list(values or ())
            bad += [f"objective {i} = {v!r}" for i, v in enumerate(values) if not is_finite(v)]
        if bad and state != "fail":
            state, error = "fail", f"non-finite value(s), not recorded: {', '.join(bad)}"
        result = _result(state, metrics, constraints)
        if error:
            result["error"] = error[:2000]
        self.storage.set_trial_user_attr(trial_id, "result", result)
        if constraints and not bad:  # Optuna reads them by position: all or none
            self.storage.set_trial_system_attr(trial_id, "constraints", list(constraints.values()))
        states = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
                  "fail": optuna.trial.TrialState.FAIL}
        self.storage.set_trial_state_values(trial_id, state=states[state],
                                            values=[float(v) for v in values] if state == "complete" else None)


def _trial_states(states: Sequence[str] | None):
    """Optuna ``TrialState`` members for record state names (None: every state)."""
    if states is None:
        return None
    by_name = {record_state: optuna_name for optuna_name, record_state in STATES.items()}
    unknown = [s for s in states if s not in by_name]
    if unknown:
        raise ValueError(f"states must be among {sorted(by_name)}, got {unknown}")
    return tuple(getattr(_optuna().trial.TrialState, by_name[s]) for s in states)


def _url(storage) -> str:
    return storage if isinstance(storage, str) else str(getattr(storage, "url", ""))


def _result(state: str, metrics: Mapping[str, Metric], constraints: Mapping[str, float]) -> dict:
    feasible = state == "complete" and all(v <= 0 for v in constraints.values())
    return {"metrics": {k: m.to_dict() for k, m in metrics.items()}, "constraints": dict(constraints),
            "feasible": feasible}


def list_jobs(storage) -> list[str]:
    """Names of the hwnas jobs in ``storage``."""
    storage = storage if not isinstance(storage, str) else open_storage(storage)
    return [s.study_name for s in storage.get_all_studies() if JOB_ATTR in s.user_attrs]

"""Typed records of the job store, each read from Optuna in one place: ``TrialRecord`` (one trial,
like optuna's ``FrozenTrial``) and ``JobConfig`` (the job's own record).

Contract: :meth:`TrialRecord.from_trial` is the only code that reads a trial's user attributes and
:meth:`JobConfig.from_json` the only code that reads the job's ``hwnas`` record (the layouts are
described in ``nas.jobs.store``); everything else in ``nas`` reads records. The stored layouts are
unchanged, so stores written before records existed load as they are (missing keys read as
``None`` or empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping

from hw_profiles import Metric
from search_spaces import NASError
from nas.jobs._store_values import finite_predictions
from nas.jobs.objectives import Objective

#: Optuna ``TrialState`` names -> the record's ``state``.
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail", "RUNNING": "running", "WAITING": "waiting"}
#: States of a trial whose evaluation is over.
FINISHED = ("complete", "pruned", "fail")


def metric_from_dict(blob: Mapping[str, Any]) -> Metric:
    """The :class:`~hw_profiles.Metric` that ``Metric.to_dict()`` stored (``interval`` and ``coverage``
    absent in stores written before they existed). A malformed figure raises ``ValueError`` or
    ``TypeError``, which readers treat as a damaged row."""
    spread, precision = blob.get("spread"), blob.get("precision")
    interval, coverage = blob.get("interval"), blob.get("coverage")
    if interval is not None and (not isinstance(interval, (list, tuple)) or len(interval) != 2):
        raise ValueError(f"a stored Metric.interval must be [lo, hi], got {interval!r}")
    return Metric(value=float(blob["value"]), unit=str(blob.get("unit", "")), source=str(blob["source"]),
                  profile=str(blob.get("profile", "")), spread=None if spread is None else float(spread),
                  precision=None if precision is None else str(precision),
                  interval=None if interval is None else (float(interval[0]), float(interval[1])),
                  coverage=coverage)


def arch_id_of(trial) -> str | None:
    """The ``arch_id`` of an Optuna trial, without building its record (a cheap filter)."""
    return trial.user_attrs.get("arch_id")


@dataclass(frozen=True)
class TrialRecord:
    """One trial: ``state`` is ``complete``, ``pruned``, ``fail``, ``running`` or ``waiting``;
    ``metrics`` by name with provenance; ``constraints`` by label (violation, ``<= 0`` satisfied);
    ``feasible`` only for a complete trial satisfying every constraint; ``error`` for failures;
    ``predicted``: ``{objective: (mean, var)}`` that a model-guided searcher (linas) predicted for the
    arch before it was evaluated, in the objective's own units (empty for other searchers)."""

    number: int
    arch: Mapping[str, Any]
    arch_id: str | None
    state: str
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    constraints: Mapping[str, float] = field(default_factory=dict)
    feasible: bool = False
    error: str | None = None
    predicted: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state not in STATES.values():
            raise ValueError(f"TrialRecord.state must be one of {sorted(STATES.values())}, got {self.state!r}")

    @classmethod
    def from_trial(cls, trial) -> "TrialRecord":
        """The record of an Optuna ``FrozenTrial`` written by ``nas.jobs.store``."""
        attrs = trial.user_attrs
        result = attrs.get("result") or {}
        return cls(number=trial.number, arch=dict(attrs.get("arch") or {}), arch_id=arch_id_of(trial),
                   state=STATES.get(trial.state.name, trial.state.name.lower()),
                   metrics={name: metric_from_dict(m) for name, m in (result.get("metrics") or {}).items()},
                   constraints={label: float(v) for label, v in (result.get("constraints") or {}).items()},
                   feasible=bool(result.get("feasible", False)), error=result.get("error"),
                   predicted=finite_predictions(attrs.get("predicted")))

    @property
    def finished(self) -> bool:
        """Whether the evaluation is over (complete, pruned or failed)."""
        return self.state in FINISHED

    def value(self, name: str) -> float:
        """The value of metric ``name`` (NaN when it was not recorded)."""
        metric = self.metrics.get(name)
        return metric.value if metric is not None else float("nan")


def latest_records(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    """One record per ``arch_id``, the newest attempt (a retried trial leaves a stale FAIL copy),
    in trial-number order."""
    latest: dict[str, TrialRecord] = {}
    for record in sorted(records, key=lambda r: r.number):
        if record.arch_id is not None:
            latest[record.arch_id] = record
    return sorted(latest.values(), key=lambda r: r.number)


@dataclass(frozen=True, kw_only=True)
class JobObjective:
    """An objective as the job recorded it: ``metric`` is its catalog metric name, ``None`` for a
    Python function (such a job's objectives cannot be rebuilt from the store)."""

    name: str
    direction: str
    metric: str | None = None

    def objective(self) -> Objective:
        """An :class:`Objective` of this name and direction, to read results with (metric ``user`` for
        a Python function's)."""
        return Objective(self.name, self.metric or "user", direction=self.direction)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "direction": self.direction, "metric": self.metric}


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """What a job recorded about itself: its space, objectives (in order), constraint labels, algorithm,
    budget and seed; ``extra`` holds the other keys of the record (``config``: the ``SearchConfig``
    of a job started from TOML, ``profiles``, ``checkpoint_sha256``). ``to_json()`` is the stored
    record of a new job: the fields in this order, then ``extra``'s keys."""

    space: str | None = None
    space_version: Any = None
    objectives: tuple[JobObjective, ...] = ()
    constraints: tuple[str, ...] = ()
    algorithm: str | None = None
    budget: int | None = None
    seed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not all(isinstance(o, JobObjective) for o in self.objectives):
            raise ValueError(f"JobConfig.objectives must be JobObjective records, got {self.objectives!r}")
        if self.budget is not None and (isinstance(self.budget, bool) or not isinstance(self.budget, int)):
            raise ValueError(f"JobConfig.budget must be an integer or None, got {self.budget!r}")
        clash = sorted(set(self.extra) & _JOB_KEYS)
        if clash:
            raise ValueError(f"JobConfig.extra must not hold the record's own keys, got {clash}")

    @property
    def search_config(self) -> Mapping[str, Any] | None:
        """The stored ``SearchConfig.to_dict()`` of a job started from a TOML config, else ``None``."""
        return self.extra.get("config") or None

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "space_version": self.space_version,
                "objectives": [o.to_json() for o in self.objectives], "constraints": list(self.constraints),
                "algorithm": self.algorithm, "budget": self.budget, "seed": self.seed, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "JobConfig":
        """The record of a stored ``hwnas`` attribute (any age: missing keys read as None or empty).
        A malformed record (a forged or damaged store) is a one-line :class:`JobRecordError`."""
        try:
            if not isinstance(data, Mapping):
                raise TypeError(f"expected a JSON object, got {type(data).__name__}")
            objectives = tuple(JobObjective(name=str(o["name"]), direction=str(o["direction"]),
                                            metric=o.get("metric")) for o in data.get("objectives") or ())
            return cls(space=data.get("space"), space_version=data.get("space_version"), objectives=objectives,
                       constraints=tuple(data.get("constraints") or ()), algorithm=data.get("algorithm"),
                       budget=data.get("budget"), seed=data.get("seed"),
                       extra={k: v for k, v in data.items() if k not in _JOB_KEYS})
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise JobRecordError(f"the job's stored record is malformed ({type(err).__name__}: {err}); "
                                 "the store was not written by hwnas or is damaged") from None


class JobRecordError(NASError, ValueError):
    """A job's stored record cannot be read (one line; the CLI exits with code 2)."""


_JOB_KEYS = frozenset(f.name for f in fields(JobConfig)) - {"extra"}

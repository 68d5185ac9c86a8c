"""``TrialRecord``: one trial of a job, read from the Optuna store in one place (like optuna's ``FrozenTrial``).

Contract: :meth:`TrialRecord.from_trial` is the only code that reads a trial's user attributes
(the layout is described in ``nas.jobs.store``); everything else in ``nas`` reads records. The
stored layout is unchanged, so stores written before records existed load as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from hw_profiles import Metric

#: Optuna ``TrialState`` names -> the record's ``state``.
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail", "RUNNING": "running", "WAITING": "waiting"}
#: States of a trial whose evaluation is over.
FINISHED = ("complete", "pruned", "fail")


def metric_from_dict(blob: Mapping[str, Any]) -> Metric:
    """The :class:`~hw_profiles.Metric` that ``Metric.to_dict()`` stored."""
    spread = blob.get("spread")
    return Metric(value=float(blob["value"]), unit=str(blob.get("unit", "")), source=str(blob["source"]),
                  profile=str(blob.get("profile", "")), spread=None if spread is None else float(spread))


def arch_id_of(trial) -> str | None:
    """The ``arch_id`` of an Optuna trial, without building its record (a cheap filter)."""
    return trial.user_attrs.get("arch_id")


@dataclass(frozen=True)
class TrialRecord:
    """One trial: ``state`` is ``complete``, ``pruned``, ``fail``, ``running`` or ``waiting``;
    ``metrics`` by name with provenance; ``constraints`` by label (violation, ``<= 0`` satisfied);
    ``feasible`` only for a complete trial satisfying every constraint; ``error`` for failures."""

    number: int
    arch: Mapping[str, Any]
    arch_id: str | None
    state: str
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    constraints: Mapping[str, float] = field(default_factory=dict)
    feasible: bool = False
    error: str | None = None

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
                   feasible=bool(result.get("feasible", False)), error=result.get("error"))

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

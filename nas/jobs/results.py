"""Reading a job back: every trial and the Pareto front as pandas DataFrames.

Contract: ``SearchResult(job, objectives)`` reads the store on each call (a job other processes
still extend is seen as it is now). :meth:`SearchResult.records` are the finished trials as
:class:`~nas.jobs.records.TrialRecord`; columns of :meth:`SearchResult.trials` and :meth:`SearchResult.pareto`: ``trial``, ``state``, ``arch_id``, one column per setting, one per
objective (natural units and direction), then per objective ``<name>.source``, ``<name>.profile``,
``<name>.spread``, ``<name>.lo``, ``<name>.hi`` and ``<name>.coverage`` (the prediction interval
``[lo, hi]`` and its nominal coverage, e.g. 0.9, of a predicted figure; None where the metric has
none), ``<name>.precision`` (the numeric format: fp32, int8, mixed; None for MACs and
params), one column per constraint (its violation, ``<= 0`` satisfied) and ``feasible``.
A retried trial (its worker died) appears once: its newest attempt. The front holds the feasible,
non-dominated COMPLETE trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from hw_profiles import Metric
from nas._results import OMIT_NONE, ReportRecord
from nas.jobs.objectives import Objective, ObjectiveError
from nas.jobs.records import FINISHED, TrialRecord, latest_records
from nas.searchers.loop import hypervolume, pareto_mask
from search_spaces import AcceleratorSpace, ArchConfig, SearchSpace, get_space


def objective_matrix(records: Sequence[TrialRecord], objectives: Sequence[Objective]) -> np.ndarray:
    """``(n, n_objectives)`` minimised values (maximised ones negated) of ``objectives`` (any subset of
    the job's), read from each record's metrics; NaN rows for records without values."""
    signs = np.array([o.sign for o in objectives])
    rows = []
    for r in records:
        if r.state == "complete" and all(o.name in r.metrics for o in objectives):
            rows.append(np.array([r.metrics[o.name].value for o in objectives], dtype=np.float64) * signs)
        else:
            rows.append(np.full(len(objectives), np.nan))
    return np.array(rows, dtype=np.float64).reshape(len(records), len(objectives))


def constraint_matrix(records: Sequence[TrialRecord], labels: Sequence[str]) -> np.ndarray:
    """``(n, len(labels))`` constraint violations of each record (NaN where not recorded)."""
    return np.array([[r.constraints.get(label, np.nan) for label in labels] for r in records],
                    dtype=np.float64).reshape(len(records), len(labels))


def row_metric(row, name: str, *, unit: str = "") -> Metric:
    """The :class:`~hw_profiles.Metric` of objective ``name`` in a row of :meth:`SearchResult.pareto`
    (or of ``front.csv`` read back): its value, provenance, spread, precision and prediction interval."""
    lo, hi, coverage = (_cell(row.get(f"{name}.{k}")) for k in ("lo", "hi", "coverage"))
    precision = _cell(row.get(f"{name}.precision"))
    return Metric(value=float(row[name]), unit=unit, source=str(row[f"{name}.source"]),
                  profile=str(_cell(row.get(f"{name}.profile")) or ""), spread=_cell(row.get(f"{name}.spread")),
                  precision=None if precision is None else str(precision),
                  interval=None if lo is None or hi is None else (lo, hi), coverage=coverage)


def _cell(value):
    """A frame cell as a plain Python value; None for a missing one (None or NaN)."""
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


class SearchResult:
    def __init__(self, job, objectives: Sequence[Objective], *, space: SearchSpace | None = None) -> None:
        self.job = job
        self.objectives = list(objectives)
        self._space = space

    @property
    def space(self) -> SearchSpace:
        """The job's space (looked up in the registry unless given)."""
        if self._space is None:
            self._space = get_space(self.job.job_config.space)
        return self._space

    @property
    def name(self) -> str:
        return self.job.name

    def with_objectives(self, names: str | Sequence[str]) -> "SearchResult":
        """This job's result over a subset of its objectives (kept in the job's order); ``names`` is a
        sequence or a comma-separated string (as ``nas pareto --objectives`` takes it). An empty
        subset or an unknown name raises :class:`ObjectiveError` naming them and the job's objectives."""
        spec = names if isinstance(names, str) else ",".join(names)
        chosen = [n.strip() for n in spec.split(",") if n.strip()]
        known = [o.name for o in self.objectives]
        unknown = [n for n in chosen if n not in known]
        if unknown or not chosen:
            raise ObjectiveError(f"--objectives {spec!r}: unknown {unknown}; job {self.name!r} has {known}")
        return SearchResult(self.job, [o for o in self.objectives if o.name in chosen], space=self._space)

    def _pair_ids(self, record: TrialRecord) -> dict:
        """``network_id`` and ``hw_id`` of a co-design trial (the two halves of its pair); {} otherwise."""
        if self._space is None and "+hw(" not in self.job.job_config.space:
            return {}  # not a co-design job (and maybe a user space the registry does not know)
        space = self.space
        if not isinstance(space, AcceleratorSpace):
            return {}
        arch = space.parse(dict(record.arch))
        return {"network_id": space.network(arch).arch_id, "hw_id": space.hw_id(arch)}

    def _rows(self, records: Sequence[TrialRecord]) -> list[dict]:
        rows = []
        for r in records:
            row = {"trial": r.number, "state": r.state, "arch_id": r.arch_id, **self._pair_ids(r), **r.arch}
            for o in self.objectives:
                row[o.name] = r.value(o.name)
            for o in self.objectives:
                m = r.metrics.get(o.name)
                row[f"{o.name}.source"] = m.source if m else None
                row[f"{o.name}.profile"] = m.profile if m else None
                row[f"{o.name}.spread"] = m.spread if m else None
                lo, hi = m.interval if m and m.interval else (None, None)
                row[f"{o.name}.lo"], row[f"{o.name}.hi"] = lo, hi
                row[f"{o.name}.coverage"] = m.coverage if m else None
                row[f"{o.name}.precision"] = m.precision if m else None
            row.update(r.constraints)
            row["feasible"] = r.feasible
            rows.append(row)
        return rows

    def _frame(self, records: Sequence[TrialRecord]):
        import pandas as pd

        return pd.DataFrame(self._rows(records))

    def records(self) -> list[TrialRecord]:
        """Every finished evaluation as a :class:`TrialRecord` (a retried arch once: its newest attempt)."""
        return latest_records(self.job.records(states=FINISHED))

    def counted_records(self) -> list[TrialRecord]:
        """The evaluations the budget counts (complete and failed; not pruned ones), in trial order."""
        return [r for r in self.records() if r.state != "pruned"]

    def trials(self):
        """Every finished evaluation (complete, pruned, failed) as a DataFrame."""
        return self._frame(self.records())

    def _feasible_trials(self) -> list[TrialRecord]:
        return [r for r in self.records() if r.state == "complete" and r.feasible]

    def feasible_matrix(self) -> np.ndarray:
        """Minimised objective values of every feasible complete evaluation."""
        return objective_matrix(self._feasible_trials(), self.objectives)

    def _front_trials(self) -> list[TrialRecord]:
        complete = self._feasible_trials()
        if not complete:
            return []
        mask = pareto_mask(objective_matrix(complete, self.objectives))
        return [t for t, keep in zip(complete, mask) if keep]

    def front_records(self) -> list[TrialRecord]:
        """The feasible non-dominated complete trials as records, in trial order."""
        return self._front_trials()

    def pareto(self):
        """The feasible non-dominated trials, sorted by the first objective."""
        frame = self._frame(self._front_trials())
        return frame.sort_values(self.objectives[0].name).reset_index(drop=True) if len(frame) else frame

    def front_matrix(self) -> np.ndarray:
        """Minimised objective values of the front, ``(n_front, n_objectives)``."""
        return objective_matrix(self._front_trials(), self.objectives)

    def hypervolume(self, ref_point: Sequence[float]) -> float:
        """Hypervolume of the front in minimised space against ``ref_point`` (minimised units)."""
        front = self.front_matrix()
        return hypervolume(front, ref_point) if len(front) else 0.0

    def arch(self, trial: int) -> ArchConfig:
        """The architecture of trial number ``trial``."""
        for r in self.job.records():
            if r.number == trial:
                return self.space.parse(dict(r.arch))
        raise KeyError(f"job {self.name!r} has no trial {trial}")


def load_job(name: str, *, storage, space: SearchSpace | None = None, read_only: bool = True) -> SearchResult:
    """The :class:`SearchResult` of a job already in ``storage`` (objectives as the job recorded them),
    opened read-only unless ``read_only=False`` (a missing SQLite store is refused, not created). Give
    ``space`` for a user space that is not registered."""
    from nas.jobs.store import Job, open_storage

    job = Job.load(name, storage=open_storage(storage, read_only=read_only))
    return SearchResult(job, [o.objective() for o in job.job_config.objectives], space=space)


def normalised_hypervolume(front: np.ndarray, points: np.ndarray) -> float:
    """HV of ``front`` after mapping each objective to [0, 1] by the ideal and nadir of ``points``
    (reference point 1.1 in each objective)."""
    if not len(front):
        return 0.0
    ideal, nadir = points.min(axis=0), points.max(axis=0)
    scale = np.where(nadir > ideal, nadir - ideal, 1.0)
    return hypervolume((front - ideal) / scale, np.full(points.shape[1], 1.1))


#: Relative slack when a prefix's hypervolume is compared with a final one (the same front summed in
#: another order may differ in the last bits).
_HV_RTOL = 1e-9


def hypervolume_curve(records: Sequence[TrialRecord], objectives: Sequence[Objective],
                      points: np.ndarray) -> np.ndarray:
    """Entry ``k - 1``: the normalised hypervolume (on ``points``' scale, as :func:`normalised_hypervolume`)
    of the feasible complete evaluations among ``records[:k]``; nondecreasing. The front is kept as it
    grows, and the hypervolume recomputed only where a new feasible point is not weakly dominated by
    it (elsewhere the value cannot change)."""
    F = objective_matrix(records, objectives)
    feasible = (np.array([r.state == "complete" and r.feasible for r in records], dtype=bool).reshape(len(records))
                & np.isfinite(F).all(axis=1))
    curve, front = np.zeros(len(records)), np.empty((0, F.shape[1]))
    for i in np.flatnonzero(feasible):
        if (front <= F[i]).all(axis=1).any():
            continue
        front = np.vstack([front[~(F[i] <= front).all(axis=1)], F[i]])  # drop the rows it dominates
        curve[i] = normalised_hypervolume(front, points)
    return np.maximum.accumulate(curve) if len(curve) else curve


def evaluations_to_reach(curve: np.ndarray, target: float) -> int | None:
    """The smallest ``k`` with ``curve[k - 1] >= target`` (:func:`hypervolume_curve`'s prefixes): 0 for a
    target of 0, None when the curve never reaches it."""
    if target <= 0:
        return 0
    hit = np.flatnonzero(curve >= target * (1 - _HV_RTOL))
    return int(hit[0]) + 1 if len(hit) else None


def _times(x: float) -> str:
    return f"{x:.2f}x" if x < 1.1 else f"{x:.1f}x"


@dataclass(frozen=True, kw_only=True)
class HypervolumeComparison(ReportRecord):
    """:func:`compare_hypervolume`'s report (stored as the job's ``report`` attribute, and under
    ``search.hypervolume`` in ``summary.json``): both fronts' normalised hypervolumes and sizes,
    ``ratio`` (None when the baseline's is 0), and the ``normalisation`` used (``ideal``, ``nadir``,
    ``ref``; absent when neither job has a feasible evaluation).

    On the same scale, counted over each job's *counted* evaluations (complete and failed trials, the
    ones its budget counts; pruned ones do not) in trial-number order: ``evaluations`` and
    ``baseline_evaluations``; ``baseline_evaluations_to_match``, the fewest of the baseline's first
    evaluations whose feasible front reaches this job's final hypervolume; ``evaluations_to_match_baseline``,
    the fewest of this job's reaching the baseline's final hypervolume; ``baseline_evaluations_to_final``,
    the fewest of the baseline's reaching its own final hypervolume. A count is 0 for a hypervolume of 0
    and None when the job never reached it; all five are None in a report stored before they existed."""

    hypervolume: float
    baseline_hypervolume: float
    ratio: float | None
    front_size: int
    baseline_front_size: int
    baseline_job: str
    evaluations: int | None
    baseline_evaluations: int | None
    baseline_evaluations_to_match: int | None
    evaluations_to_match_baseline: int | None
    baseline_evaluations_to_final: int | None
    normalisation: dict | None = field(default=None, metadata=OMIT_NONE)

    #: Keys a report stored before they existed lacks (read back as None).
    ADDED_KEYS: ClassVar[tuple[str, ...]] = ("evaluations", "baseline_evaluations", "baseline_evaluations_to_match",
                                            "evaluations_to_match_baseline", "baseline_evaluations_to_final")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "HypervolumeComparison":
        """The record of a stored report, of any age (:attr:`ADDED_KEYS` missing read as None)."""
        if isinstance(data, Mapping):
            data = {**dict.fromkeys(cls.ADDED_KEYS), **data}
        return super().from_json(data)

    def savings_line(self) -> str:
        """One line: how many evaluations random search needed to reach this job's hypervolume, or how
        soon this job reached random search's; "none" when random search matched it within this job's
        own number of evaluations."""
        head = "evaluations saved: "
        n, nb, kb = self.evaluations, self.baseline_evaluations, self.baseline_evaluations_to_match
        kj, kf = self.evaluations_to_match_baseline, self.baseline_evaluations_to_final
        if n is None or nb is None:
            return head + "not recorded (the report was stored before hwnas counted them)"
        if self.hypervolume <= 0:
            return head + f"none: this job found no feasible architecture in its {n} evaluations (hypervolume 0)"
        if kb is not None and kb > n:
            return (head + f"random search needed {kb} evaluations to reach this hypervolume "
                    f"({_times(kb / n)} this job's {n})")
        if kb is not None:
            return (head + f"none: random search reached this job's hypervolume after {kb} of its {nb} evaluations "
                    f"(this job used {n})")
        if self.baseline_hypervolume <= 0 or kj is None or kf is None:
            return (head + f"random search found no feasible architecture in its {nb} evaluations "
                    f"(hypervolume 0); this job used {n}")
        pace = f"{_times(kf / kj)} fewer" if kj < kf else "no fewer"
        return (head + f"random search did not reach this hypervolume in its {nb} evaluations; this job reached "
                f"random search's final hypervolume after {kj}, random search after {kf} ({pace})")


def compare_hypervolume(result: SearchResult, baseline: SearchResult) -> HypervolumeComparison:
    """Hypervolumes of two jobs' fronts on one scale: every objective is normalised by the ideal and
    nadir of both jobs' feasible complete evaluations together (reference point 1.1 in each).
    ``ratio`` = this job's / the baseline's; the evaluation counts as :class:`HypervolumeComparison` says."""
    F, B = result.front_matrix(), baseline.front_matrix()
    points = np.vstack([result.feasible_matrix(), baseline.feasible_matrix()])
    mine, theirs = (hypervolume_curve(r.counted_records(), r.objectives, points) for r in (result, baseline))
    final, base_final = (float(c[-1]) if len(c) else 0.0 for c in (mine, theirs))
    counts = dict(evaluations=len(mine), baseline_evaluations=len(theirs),
                  baseline_evaluations_to_match=evaluations_to_reach(theirs, final),
                  evaluations_to_match_baseline=evaluations_to_reach(mine, base_final),
                  baseline_evaluations_to_final=evaluations_to_reach(theirs, base_final))
    if not len(points):
        return HypervolumeComparison(hypervolume=0.0, baseline_hypervolume=0.0, ratio=None, front_size=0,
                                     baseline_front_size=0, baseline_job=baseline.name, **counts)
    hv, hv_base = normalised_hypervolume(F, points), normalised_hypervolume(B, points)
    return HypervolumeComparison(
        hypervolume=round(hv, 6), baseline_hypervolume=round(hv_base, 6),
        ratio=round(hv / hv_base, 4) if hv_base > 0 else None, front_size=len(F),
        baseline_front_size=len(B), baseline_job=baseline.name, **counts,
        normalisation={"ideal": points.min(axis=0).tolist(), "nadir": points.max(axis=0).tolist(),
                       "ref": [1.1] * points.shape[1]})

"""How calibrated a job's accuracy predictor was: its held-out predictions against the measured values.

Contract: a model-guided searcher (``linas``) predicts ``(mean, var)`` for every arch it proposes,
before the arch is evaluated (:meth:`nas.searchers.Searcher.predictions`, minimised units by objective
column). :func:`prediction_source` turns them into ``{arch_id: {objective: {"mean", "var"}}}`` in each
objective's own units (a maximised objective's mean is negated back; the variance is unchanged), which
:func:`nas.jobs.search.search` stores on each queued trial as its ``predicted`` attribute, so the
pairs survive a resume and are written by the driver however workers evaluate. The report pairs the
``predicted`` of every complete trial with its measured value (:class:`~nas.jobs.records.TrialRecord`)
and runs :func:`predictors.calibration.interval_report` on them: how many measured values fell in the
nominal 90% Gaussian interval, Kendall τ, and the conformal factor that would fix the variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from nas._results import ReportRecord
from nas.jobs.records import TrialRecord

#: Metric names and objective-name fragments that identify "the accuracy objective" of a job.
_ACCURACY_METRICS = ("accuracy",)
_ACCURACY_NAMES = ("acc", "top1", "top-1")


@dataclass(frozen=True, kw_only=True)
class PredictorCalibration(ReportRecord):
    """:func:`predictors.calibration.interval_report` of one objective's held-out predictions
    (``objective`` names it; the other fields are that report's keys)."""

    objective: str
    n: int
    nominal: float
    covered: int
    empirical: float
    z: float
    kendall_tau: float | None
    median_width: float
    scale: float | None

    def line(self, what: str = "accuracy predictor") -> str:
        """``accuracy predictor: 90% interval covered 41 of 48 held-out evaluations (85%), Kendall tau 0.62``."""
        tau = "n/a" if self.kendall_tau is None else f"{self.kendall_tau:.2f}"
        return (f"{what}: {self.nominal:.0%} interval covered {self.covered} of {self.n} held-out evaluations "
                f"({self.empirical:.0%}), Kendall tau {tau}")


def prediction_source(searcher, objectives: Sequence) -> Callable[[Sequence[str]], dict] | None:
    """``arch_ids -> {arch_id: {objective name: {"mean", "var"}}}`` (objective units) of the searcher's
    held-out predictions; None for a searcher without :meth:`~nas.searchers.Searcher.predictions`
    (e.g. a co-design wrapper)."""
    predictions = getattr(searcher, "predictions", None)
    if not callable(predictions):
        return None

    def source(arch_ids: Sequence[str]) -> dict:
        out = {}
        for arch_id, columns in predictions(list(arch_ids)).items():
            named = {objectives[i].name: {"mean": objectives[i].sign * mean, "var": var}
                     for i, (mean, var) in columns.items() if 0 <= i < len(objectives)}  # the store keeps finite ones
            if named:
                out[arch_id] = named
        return out

    return source


def prediction_pairs(records: Sequence[TrialRecord], objective: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, var, y)`` over the complete ``records`` that carry a prediction of ``objective`` and a
    finite measured value of it."""
    rows = [(*r.predicted[objective], r.metrics[objective].value) for r in records
            if r.state == "complete" and objective in r.predicted and objective in r.metrics
            and math.isfinite(r.metrics[objective].value)]
    arr = np.array(rows, dtype=np.float64).reshape(len(rows), 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def calibration_reports(records: Sequence[TrialRecord], objectives: Sequence[str], *,
                        coverage: float = 0.9) -> dict[str, PredictorCalibration]:
    """A :class:`PredictorCalibration` per objective in ``objectives`` that has held-out pairs."""
    from predictors.calibration import interval_report

    out = {}
    for name in objectives:
        mean, var, y = prediction_pairs(records, name)
        if len(y):
            out[name] = PredictorCalibration(objective=name, **interval_report(mean, var, y, coverage=coverage))
    return out


def _accuracy_first(objectives: Sequence) -> list[str]:
    """Objective names (the job's recorded ``JobObjective``s), the accuracy one first: metric
    ``accuracy``, then a name like ``acc``/``top1``. The job's record, not the caller's objectives, so
    that ``nas search`` and ``nas pareto`` pick the same one."""
    def rank(o) -> int:
        if o.metric in _ACCURACY_METRICS:
            return 0
        return 1 if any(part in o.name.lower() for part in _ACCURACY_NAMES) else 2

    return [o.name for o in sorted(objectives, key=rank)]


def accuracy_predictor_report(result, *, coverage: float = 0.9) -> PredictorCalibration | None:
    """The calibration of a job's accuracy predictor (``result``: a :class:`~nas.jobs.results.SearchResult`):
    of the objective with metric ``accuracy``, else one named like ``acc``/``top1``, else the first
    objective with held-out predictions; None when the job has none (not a ``linas`` job, or every
    proposal so far was a warm-up sample)."""
    reports = calibration_reports(result.records(), [o.name for o in result.objectives], coverage=coverage)
    for name in _accuracy_first(result.job.job_config.objectives):
        if name in reports:
            return reports[name]
    return None

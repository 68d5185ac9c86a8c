"""The front stage of ``nas run``: check the latency model on a few front members, write ``front.csv``
and ``front.png``, and pick the subnet to export (the table: :mod:`nas.report.tables`).

Contract: :func:`verify_front` measures the device latency of ``n`` front members spread over the
predicted-latency range (fastest, slowest and evenly between) on this host with the profile's
backend and threads, and returns one :class:`FrontMeasurement` per member with the prediction (and
its prediction interval, where the latency model gives one) and the measurement, each with its
provenance; :func:`interval_check` counts the members measured inside their interval.
:func:`write_front` writes the front (every column of ``SearchResult.pareto()``, the prediction
intervals' ``<name>.lo``/``.hi``/``.coverage`` included, plus ``<latency>.measured_ms`` /
``<latency>.measured_iqr_ms`` where measured) to ``front.csv`` and the plot (baseline in grey) to
``front.png``, both atomically.
:func:`pick_within_budget` returns the most accurate front row whose *predicted* latency is within
the budget, or raises :class:`NoSubnetInBudgetError` saying what the fastest member needs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from hw_profiles import Metric
from nas.jobs.objectives import Objective
from nas.jobs.records import metric_from_dict
from nas.jobs.results import row_metric
from search_spaces import NASError

CSV_NAME, PNG_NAME = "front.csv", "front.png"


class NoSubnetInBudgetError(NASError, ValueError):
    """No Pareto-front subnet's predicted latency is within the export budget."""


def spread_indices(n: int, k: int) -> list[int]:
    """``min(k, n)`` distinct indices of ``range(n)`` spread evenly from the first to the last."""
    if k <= 0 or n <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(k, n))})


@dataclass(frozen=True, kw_only=True)
class FrontMeasurement:
    """One front member's latency: the search's ``predicted_ms`` beside this host's ``measured_ms``
    (each a :class:`~hw_profiles.Metric` with provenance; the prediction with its interval and
    coverage where the latency model gives one) and ``error_pct`` = (predicted - measured) /
    measured, in %. ``inside`` says whether the measurement lies in the prediction interval (None
    without one). ``to_json()`` is its entry under ``front.measured`` in ``summary.json``."""

    trial: int
    arch_id: str
    predicted_ms: Metric
    measured_ms: Metric
    error_pct: float
    at_run_speed_ms: Metric | None = None  # measured beside the profile's reference (nas.profiling.remeasure)
    model_interval: tuple[float, float] | None = None  # the prediction's interval without the drift part

    @property
    def inside(self) -> bool | None:
        """Whether the measured latency lies in the predicted one's interval; None without an interval."""
        return _within(self.measured_ms, self.predicted_ms.interval)

    @property
    def inside_at_run_speed(self) -> bool | None:
        """Whether the latency at the profile run's speed lies in the model-only interval; None without."""
        return _within(self.at_run_speed_ms, self.model_interval)

    def to_json(self) -> dict[str, Any]:
        at_speed = self.at_run_speed_ms.to_dict() if self.at_run_speed_ms else None
        return {"trial": self.trial, "arch_id": self.arch_id, "predicted_ms": self.predicted_ms.to_dict(),
                "measured_ms": self.measured_ms.to_dict(), "error_pct": self.error_pct, "inside": self.inside,
                "at_run_speed_ms": at_speed, "model_interval": list(self.model_interval) if self.model_interval else None,
                "inside_at_run_speed": self.inside_at_run_speed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FrontMeasurement":
        """The record :meth:`to_json` wrote (a previous run's ``summary.json``; one written before
        intervals, or before the prediction's unit was stored, reads without them)."""
        predicted = metric_from_dict({"unit": "ms", **data["predicted_ms"]})
        at_speed, interval = data.get("at_run_speed_ms"), data.get("model_interval")
        return cls(trial=data["trial"], arch_id=data["arch_id"], predicted_ms=predicted,
                   measured_ms=metric_from_dict(data["measured_ms"]), error_pct=data["error_pct"],
                   at_run_speed_ms=metric_from_dict(at_speed) if at_speed else None,
                   model_interval=tuple(float(v) for v in interval) if interval else None)


def _within(metric: Metric | None, interval) -> bool | None:
    if metric is None or interval is None:
        return None
    lo, hi = interval
    return bool(lo <= metric.value <= hi)


def interval_check(records: Sequence[FrontMeasurement]) -> dict | None:
    """How the re-measured members fall against their prediction intervals: ``inside`` of ``checked``
    (the members whose prediction has an interval) at nominal ``coverage`` (None if they differ), and
    ``inside_at_run_speed`` of ``checked_at_run_speed`` (their latency at the profile run's machine speed
    inside the model-only interval; None when none was measured that way); None when no prediction has
    an interval."""
    checked = [r for r in records if r.inside is not None]
    if not checked:
        return None
    coverages = {r.predicted_ms.coverage for r in checked}
    at_speed = [r.inside_at_run_speed for r in checked if r.inside_at_run_speed is not None]
    return {"inside": sum(bool(r.inside) for r in checked), "checked": len(checked),
            "coverage": coverages.pop() if len(coverages) == 1 else None,
            "inside_at_run_speed": sum(at_speed) if at_speed else None, "checked_at_run_speed": len(at_speed)}


def verify_front(front, space, device: str, latency: str, n: int, *, latency_model=None,
                 progress: bool = True) -> list[FrontMeasurement]:
    """Measure ``n`` front members' ``device`` latency beside their predicted latency; with the
    ``latency_model`` that predicted it (a ``LatencyModel`` that recorded its reference subnet), each
    is measured beside that reference as ``nas profile`` measured, which also gives its latency at the
    profile run's machine speed (``nas.profiling.remeasure``)."""
    from nas.profiling.remeasure import model_interval

    if not len(front):
        return []
    ordered = front.sort_values(latency).reset_index(drop=True)
    picks = spread_indices(len(ordered), n)
    measure = _measurer(space, device, latency_model)
    records = []
    for i in tqdm(picks, desc="verify latency", unit="subnet", disable=not progress, dynamic_ncols=True):
        row = ordered.iloc[i]
        measured, at_speed = measure(space.parse(_arch_of(row, space)))
        predicted = row_metric(row, latency, unit="ms")
        interval = (model_interval(latency_model, predicted.value)
                    if at_speed is not None and predicted.interval is not None else None)
        records.append(FrontMeasurement(
            trial=int(row["trial"]), arch_id=row["arch_id"], predicted_ms=predicted, measured_ms=measured,
            error_pct=round((predicted.value - measured.value) / measured.value * 100, 1),
            at_run_speed_ms=at_speed, model_interval=interval))
    return records


def _measurer(space, device: str, latency_model):
    """``arch -> (raw Metric, Metric at the profile run's speed or None)``."""
    from hw_profiles import get_profile
    from nas.jobs.config import host_measurer

    profile = get_profile(device)
    if latency_model is not None and latency_model.space.name == space.name:
        from nas.profiling.remeasure import remeasurer

        beside = remeasurer(latency_model, profile)
        if beside is not None:
            def paired(arch):
                again = beside(arch)
                return again.measured, again.at_run_speed
            return paired
    plain = host_measurer(space, profile)
    return lambda arch: (plain(arch)["latency_ms"], None)


def _arch_of(row, space) -> dict:
    return {p.name: _plain(row[p.name]) for p in space.params}


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def with_measurements(front, latency: str, records: Sequence[FrontMeasurement]):
    """The front with ``<latency>.measured_ms`` and ``<latency>.measured_iqr_ms`` (NaN where unmeasured)."""
    if not len(front):
        return front
    by_trial = {r.trial: r.measured_ms for r in records}
    frame = front.copy()
    frame[f"{latency}.measured_ms"] = [by_trial[t].value if t in by_trial else np.nan for t in frame["trial"]]
    frame[f"{latency}.measured_iqr_ms"] = [by_trial[t].spread if t in by_trial else np.nan for t in frame["trial"]]
    return frame


def write_front(out: Path, frame, trials, baseline_trials, objectives: Sequence[Objective], title: str) -> None:
    """``front.csv`` and ``front.png`` in ``out``, each written to a temporary file and renamed."""
    from nas.report.plots import plot_front

    plot_front(trials, frame, objectives, out / PNG_NAME, baseline=baseline_trials, title=title)
    fd, tmp = tempfile.mkstemp(prefix=f".{CSV_NAME}.", dir=out)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            frame.to_csv(f, index=False)
        os.replace(tmp, out / CSV_NAME)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def pick_within_budget(frame, *, accuracy: str, latency: str, budget_ms: float):
    """The most accurate front row with predicted ``latency <= budget_ms`` (ties: the faster one)."""
    if not len(frame):
        raise NoSubnetInBudgetError("the Pareto front is empty: no feasible subnet to export")
    within = frame[frame[latency] <= budget_ms]
    if not len(within):
        fastest = frame.sort_values(latency).iloc[0]
        raise NoSubnetInBudgetError(
            f"no Pareto-front subnet has predicted {latency} <= {budget_ms:g} ms (the fastest, trial "
            f"{int(fastest['trial'])}, needs {fastest[latency]:.3g} ms at {accuracy} {fastest[accuracy]:.4f}); "
            "raise [export] latency_budget_ms and rerun")
    return within.sort_values([accuracy, latency], ascending=[False, True]).iloc[0]

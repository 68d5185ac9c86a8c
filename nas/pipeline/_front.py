"""The front stage of ``nas run``: check the latency model on a few front members, write ``front.csv``
and ``front.png``, and pick the subnet to export (the table: :mod:`nas.report.tables`).

Contract: :func:`verify_front` measures the device latency of ``n`` front members spread over the
predicted-latency range (fastest, slowest and evenly between) on this host with the profile's
backend and threads, and returns one :class:`FrontMeasurement` per member with the prediction and
the measurement, each with its provenance. :func:`write_front` writes the front (every column of
``SearchResult.pareto()`` plus ``<latency>.measured_ms`` / ``<latency>.measured_iqr_ms`` where
measured) to ``front.csv`` and the plot (baseline in grey) to ``front.png``, both atomically.
:func:`pick_within_budget` returns the most accurate front row whose *predicted* latency is within
the budget, or raises :class:`NoSubnetInBudgetError` saying what the fastest member needs.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from hw_profiles import Metric
from nas.jobs.objectives import Objective
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
    (each a :class:`~hw_profiles.Metric` with provenance) and ``error_pct`` = (predicted - measured) /
    measured, in %. ``to_json()`` is its entry under ``front.measured`` in ``summary.json``."""

    trial: int
    arch_id: str
    predicted_ms: Metric
    measured_ms: Metric
    error_pct: float

    def to_json(self) -> dict[str, Any]:
        p = self.predicted_ms
        return {"trial": self.trial, "arch_id": self.arch_id,
                "predicted_ms": {"value": p.value, "source": p.source, "profile": p.profile, "spread": p.spread},
                "measured_ms": self.measured_ms.to_dict(), "error_pct": self.error_pct}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FrontMeasurement":
        """The record :meth:`to_json` wrote (a previous run's ``summary.json``)."""
        p = data["predicted_ms"]
        predicted = Metric(value=p["value"], unit="ms", source=p["source"], profile=p["profile"], spread=p["spread"])
        return cls(trial=data["trial"], arch_id=data["arch_id"], predicted_ms=predicted,
                   measured_ms=Metric(**data["measured_ms"]), error_pct=data["error_pct"])


def verify_front(front, space, device: str, latency: str, n: int, *,
                 progress: bool = True) -> list[FrontMeasurement]:
    """Measure ``n`` front members' ``device`` latency beside their predicted latency."""
    from hw_profiles import get_profile
    from nas.jobs.config import host_measurer

    if not len(front):
        return []
    ordered = front.sort_values(latency).reset_index(drop=True)
    picks = spread_indices(len(ordered), n)
    measure = host_measurer(space, get_profile(device))
    records = []
    for i in tqdm(picks, desc="verify latency", unit="subnet", disable=not progress, dynamic_ncols=True):
        row = ordered.iloc[i]
        measured = measure(space.parse(_arch_of(row, space)))["latency_ms"]
        predicted = Metric(value=float(row[latency]), unit="ms", source=row[f"{latency}.source"],
                           profile=row[f"{latency}.profile"], spread=_float(row[f"{latency}.spread"]))
        records.append(FrontMeasurement(
            trial=int(row["trial"]), arch_id=row["arch_id"], predicted_ms=predicted, measured_ms=measured,
            error_pct=round((predicted.value - measured.value) / measured.value * 100, 1)))
    return records


def _arch_of(row, space) -> dict:
    return {p.name: _plain(row[p.name]) for p in space.params}


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _float(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


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

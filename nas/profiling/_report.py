"""The report of a ``nas profile`` run (``report.json``, and the ``report`` of ``latency_model.json``)
and the error of a profile job; shared by :mod:`nas.profiling.device` (which writes it) and
:mod:`nas.profiling.latency_model` (which carries it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nas._results import OMIT_NONE, ReportRecord
from search_spaces import NASError


class ProfileJobError(NASError, ValueError):
    """A ``nas profile`` setting is unusable (wrong device kind, too few samples, output exists)."""


@dataclass(frozen=True, kw_only=True)
class ProfileResult(ReportRecord):
    """What :func:`profile_device` measured and how well each predictor did; ``to_json()`` is ``report.json``
    (also the ``report`` of ``latency_model.json``). ``held_out`` maps each predictor to its
    ``regression_report`` on the held-out split; ``repeatability`` is the re-measurement ceiling;
    ``intervals`` maps kernel- and arch-level to their calibrated interval (``nas.profiling._intervals``;
    ``None`` for one with too few fit subnets, no key in reports written before intervals)."""

    _ERROR = ProfileJobError

    device: str
    backend: str
    threads: int
    space: str
    space_version: Any
    samples: int
    n_fit: int
    n_held_out: int
    layer_workloads: int
    seed: int
    warmup: int
    repeats: int
    latency_ms: dict
    median_iqr_pct: float
    repeatability: dict
    drift: dict | None = field(default=None, metadata=OMIT_NONE)  # None: a report before drift correction
    held_out: dict
    intervals: dict | None = field(default=None, metadata=OMIT_NONE)  # None: a report before intervals
    wall_s: float
    machine: dict
    default_predictor: str

    def rmse_ms(self, predictor: str) -> float | None:
        """Held-out RMSE (ms) of ``predictor`` (``kernel_level``, ``arch_level``, ``macs_proxy``);
        ``None`` when the report did not judge it."""
        return (self.held_out.get(predictor) or {}).get("rmse")

    def interval(self, predictor: str) -> dict | None:
        """The calibrated interval entry of ``predictor``; None when there is none."""
        return (self.intervals or {}).get(predictor)

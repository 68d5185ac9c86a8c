"""Shared parts of the benchmarks' JSON: the machine a figure was measured on and a timing's median/IQR."""

from __future__ import annotations

import os
import platform


def machine(**extra) -> dict:
    """Platform, processor, Python and CPU count of this machine, with ``extra`` fields."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count(), **extra}


def timing_ms(timing) -> dict:
    """A ``kernels.timing.Timing`` as ``{"median": ms, "iqr": ms}``."""
    return {"median": round(timing.median_s * 1e3, 3), "iqr": round(timing.iqr_s * 1e3, 3)}

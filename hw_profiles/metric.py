"""``Metric``: a number with its provenance. No bare floats cross a layer boundary."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

SOURCES = ("measured", "estimated", "predicted")
PRECISIONS = ("fp32", "int8", "mixed")


@dataclass(frozen=True)
class Metric:
    """``value`` in ``unit``; ``source`` says how it was obtained; ``profile`` is ``name@version``
    of the device profile it belongs to; ``spread`` is the IQR for measured values (None else);
    ``precision`` is the numeric format of the network the figure belongs to (``fp32``, ``int8`` or
    ``mixed`` per-layer), None for figures that do not depend on it (MACs, params).

    ``interval`` ``(lo, hi)`` holds the true value with nominal probability ``coverage`` (in (0, 1),
    e.g. 0.9): a calibrated prediction interval for ``predicted`` figures (held-out residuals, widened
    by the drift the profile run saw; see :mod:`predictors.calibration`). Both or neither are set;
    ``lo <= value <= hi``. ``spread`` stays what it was (IQR of a measurement, RMSE of a predictor)."""

    value: float
    unit: str
    source: str
    profile: str
    spread: float | None = None
    precision: str | None = None
    interval: tuple[float, float] | None = None
    coverage: float | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"Metric.source={self.source!r} is not one of {list(SOURCES)}")
        if self.source == "measured" and self.spread is None:
            raise ValueError("a measured Metric needs its spread (IQR)")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"Metric.precision={self.precision!r} is not one of {list(PRECISIONS)} (or None)")
        self._check_interval()

    def _check_interval(self) -> None:
        if (self.interval is None) != (self.coverage is None):
            raise ValueError("Metric.interval and Metric.coverage go together: set both or neither, got "
                             f"interval={self.interval!r}, coverage={self.coverage!r}")
        if self.interval is None:
            return
        try:
            lo, hi = (float(v) for v in self.interval)
        except (TypeError, ValueError):
            raise ValueError(f"Metric.interval must be two numbers (lo, hi), got {self.interval!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= self.value <= hi):
            raise ValueError(f"Metric.interval must be finite with lo <= value <= hi, got ({lo!r}, {hi!r}) "
                             f"for value {self.value!r}")
        coverage = self.coverage
        if isinstance(coverage, bool) or not isinstance(coverage, (int, float)) or not 0 < coverage < 1:
            raise ValueError(f"Metric.coverage must be a fraction in (0, 1), e.g. 0.9, got {coverage!r}")
        object.__setattr__(self, "interval", (lo, hi))
        object.__setattr__(self, "coverage", float(coverage))

    def interval_text(self, fmt: str = ".3g") -> str:
        """``value [lo, hi]`` (``value`` alone without an interval), for tables."""
        if self.interval is None:
            return format(self.value, fmt)
        lo, hi = self.interval
        return f"{self.value:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

    def to_dict(self) -> dict:
        return asdict(self)


def precision_label(formats: Iterable[str]) -> str | None:
    """The ``Metric.precision`` of a network whose rows run in ``formats``: the one format when
    they share it (None if that is not one of ``PRECISIONS``, e.g. fp16), ``mixed`` when they differ,
    None for no rows."""
    kinds = set(formats)
    if len(kinds) > 1:
        return "mixed"
    if not kinds:
        return None
    (kind,) = kinds
    return kind if kind in PRECISIONS else None


def layers_precision(layers: Sequence, unset: str) -> str | None:
    """:func:`precision_label` of a layer table, a row without ``precision`` counting as ``unset``
    (the format the device runs a plain network in)."""
    return precision_label({layer.precision or unset for layer in layers})

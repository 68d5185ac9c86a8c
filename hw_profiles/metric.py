"""``Metric``: a number with its provenance. No bare floats cross a layer boundary."""

from __future__ import annotations

from dataclasses import asdict, dataclass

SOURCES = ("measured", "estimated", "predicted")


@dataclass(frozen=True)
class Metric:
    """``value`` in ``unit``; ``source`` says how it was obtained; ``profile`` is ``name@version``
    of the device profile it belongs to; ``spread`` is the IQR for measured values (None else)."""

    value: float
    unit: str
    source: str
    profile: str
    spread: float | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"Metric.source={self.source!r} is not one of {list(SOURCES)}")
        if self.source == "measured" and self.spread is None:
            raise ValueError("a measured Metric needs its spread (IQR)")

    def to_dict(self) -> dict:
        return asdict(self)

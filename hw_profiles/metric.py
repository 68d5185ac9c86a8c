"""``Metric``: a number with its provenance. No bare floats cross a layer boundary."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

SOURCES = ("measured", "estimated", "predicted")
PRECISIONS = ("fp32", "int8", "mixed")


@dataclass(frozen=True)
class Metric:
    """``value`` in ``unit``; ``source`` says how it was obtained; ``profile`` is ``name@version``
    of the device profile it belongs to; ``spread`` is the IQR for measured values (None else);
    ``precision`` is the numeric format of the network the figure belongs to (``fp32``, ``int8`` or
    ``mixed`` per-layer), None for figures that do not depend on it (MACs, params)."""

    value: float
    unit: str
    source: str
    profile: str
    spread: float | None = None
    precision: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"Metric.source={self.source!r} is not one of {list(SOURCES)}")
        if self.source == "measured" and self.spread is None:
            raise ValueError("a measured Metric needs its spread (IQR)")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"Metric.precision={self.precision!r} is not one of {list(PRECISIONS)} (or None)")

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

"""The Pareto front as a text table, as ``nas run``, ``nas search`` and ``nas pareto`` print it.

Contract: :func:`render_front_table` returns fixed-width, right-aligned columns: trial, arch_id,
then each objective with its provenance in the header (``acc [measured]``); a column whose rows
come from several sources names the source in every cell instead (``0.1234 [predicted]``), so no
estimate passes for a measurement. Then, with ``measured=NAME``, the measured latency column
``NAME.measured_ms`` where one was taken, then ``format``: the numeric format the row's figures
belong to (``int8``, ``fp32``, ``mixed``), or, where its figures belong to different formats (a
float accuracy beside an MCU cost that assumes int8), each objective's own (``acc:fp32 sram:int8``),
so such a pairing is never hidden. Values within ±1 have 4 decimals, others 4 significant
digits; a figure with a prediction interval reads ``value [lo, hi]``, and a last line states the
intervals' nominal coverage once (``[lo, hi]: 90% prediction interval``). An empty front renders as
``empty``. The front of a co-design job (``space`` an
``AcceleratorSpace``, or a frame that :func:`~nas.report._accelerator.accelerator_columns` already
extended) has ``hw_id`` and ``accelerator`` (e.g. ``ws 32x32 256/128/256KiB``) after ``arch_id``.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from hw_profiles import Metric
from nas.jobs.results import row_metric
from nas.report._accelerator import accelerator_columns

EMPTY_FRONT = "(no feasible evaluation: the front is empty)"


def render_front_table(frame, names: Sequence[str], *, measured: str | None = None, empty: str = EMPTY_FRONT,
                       space=None) -> str:
    """``frame`` (a ``SearchResult.pareto()`` frame) with objective columns ``names`` as a table; ``space``:
    the job's space (an ``AcceleratorSpace`` adds the accelerator columns)."""
    if not len(frame):
        return empty
    frame = accelerator_columns(frame, space)
    pair = [c for c in ("network_id", "hw_id", "accelerator") if c in frame]  # a co-design trial's two halves
    header = ["trial", "arch_id", *pair]
    mixed = set()
    for name in names:
        sources = list(dict.fromkeys(frame[f"{name}.source"].dropna()))
        if len(sources) > 1:
            mixed.add(name)
            header.append(name)
        else:
            header.append(f"{name} [{sources[0] if sources else '?'}]")
    column = f"{measured}.measured_ms" if measured else None
    has_measured = column is not None and column in frame and frame[column].notna().any()
    if has_measured:
        header.append(f"{measured} [measured]")
    precision_columns = [f"{n}.precision" for n in names if f"{n}.precision" in frame]
    has_format = any(frame[c].notna().any() for c in precision_columns)
    if has_format:
        header.append("format")
    rows = []
    for _, row in frame.iterrows():
        values = [str(int(row["trial"])), str(row["arch_id"]), *(str(row[c]) for c in pair)]
        values += [f"{_value(row, name)} [{row[f'{name}.source']}]" if name in mixed else _value(row, name)
                   for name in names]
        if has_measured:
            values.append("" if math.isnan(row[column]) else _fmt(row[column]))
        if has_format:
            values.append(_format(row, names))
        rows.append(values)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(v.rjust(w) for v, w in zip(values, widths)) for values in [header, *rows]]
    note = interval_note({name: frame[f"{name}.coverage"].dropna() for name in names if f"{name}.coverage" in frame})
    return "\n".join([*lines, note] if note else lines)


def figure_text(metric: Metric, fmt: str = ".3g") -> str:
    """``V unit``, or with a prediction interval ``V [lo, hi] unit (90%)``, as logs print a figure."""
    coverage = f" ({coverage_text(metric.coverage)})" if metric.coverage is not None else ""
    return " ".join(part for part in (metric.interval_text(fmt), metric.unit) if part) + coverage


def coverage_text(coverage: float) -> str:
    """A nominal coverage as a percentage: ``0.9`` -> ``90%``."""
    return f"{coverage * 100:g}%"


def interval_note(coverages: Mapping[str, Sequence[float]]) -> str | None:
    """The line stating the coverage of the ``[lo, hi]`` intervals shown, from each figure's
    coverages (``[lo, hi]: 90% prediction interval``; each figure's where they differ); None when
    no figure has an interval."""
    found = {name: sorted(set(map(float, values))) for name, values in coverages.items() if len(values)}
    distinct = sorted({c for values in found.values() for c in values})
    if not distinct:
        return None
    if len(distinct) == 1:
        return f"[lo, hi]: {coverage_text(distinct[0])} prediction interval"
    each = ", ".join(f"{name} {'/'.join(map(coverage_text, values))}" for name, values in found.items())
    return f"[lo, hi]: prediction interval, nominal coverage {each}"


def _format(row, names: Sequence[str]) -> str:
    """The row's numeric format, or each objective's where they differ."""
    labels = {n: row.get(f"{n}.precision") for n in names}
    labels = {n: p for n, p in labels.items() if isinstance(p, str)}
    kinds = set(labels.values())
    if len(kinds) <= 1:
        return kinds.pop() if kinds else ""
    return " ".join(f"{n}:{p}" for n, p in labels.items())


def _fmt(value: float) -> str:
    return format(value, _spec(value))


def _spec(value: float) -> str:
    return ".4f" if abs(value) <= 1 else ".4g"


def _value(row, name: str) -> str:
    """The cell of objective ``name``: ``value``, or ``value [lo, hi]`` with a prediction interval."""
    lo = row.get(f"{name}.lo")
    if lo is None or lo != lo:  # no interval (None or NaN)
        return _fmt(row[name])
    return row_metric(row, name).interval_text(_spec(row[name]))

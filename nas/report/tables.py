"""The Pareto front as a text table, as ``nas run``, ``nas search`` and ``nas pareto`` print it.

Contract: :func:`render_front_table` returns fixed-width, right-aligned columns: trial, arch_id,
then each objective with its provenance in the header (``acc [measured]``); a column whose rows
come from several sources names the source in every cell instead (``0.1234 [predicted]``), so no
estimate passes for a measurement. Then, with ``measured=NAME``, the measured latency column
``NAME.measured_ms`` where one was taken, then ``format``: the numeric format the row's figures
belong to (``int8``, ``fp32``, ``mixed``), or, where its figures belong to different formats (a
float accuracy beside an MCU cost that assumes int8), each objective's own (``acc:fp32 sram:int8``),
so such a pairing is never hidden. Values within ±1 have 4 decimals, others 4 significant
digits. An empty front renders as ``empty``. The front of a co-design job (``space`` an
``AcceleratorSpace``, or a frame that :func:`~nas.report._accelerator.accelerator_columns` already
extended) has ``hw_id`` and ``accelerator`` (e.g. ``ws 32x32 256/128/256KiB``) after ``arch_id``.
"""

from __future__ import annotations

import math
from typing import Sequence

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
        values += [f"{_fmt(row[name])} [{row[f'{name}.source']}]" if name in mixed else _fmt(row[name]) for name in names]
        if has_measured:
            values.append("" if math.isnan(row[column]) else _fmt(row[column]))
        if has_format:
            values.append(_format(row, names))
        rows.append(values)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(values, widths)) for values in [header, *rows])


def _format(row, names: Sequence[str]) -> str:
    """The row's numeric format, or each objective's where they differ."""
    labels = {n: row.get(f"{n}.precision") for n in names}
    labels = {n: p for n, p in labels.items() if isinstance(p, str)}
    kinds = set(labels.values())
    if len(kinds) <= 1:
        return kinds.pop() if kinds else ""
    return " ".join(f"{n}:{p}" for n, p in labels.items())


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) <= 1 else f"{value:.4g}"

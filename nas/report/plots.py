"""``front.png``: every pair of objectives, the Pareto front highlighted over all evaluations.

Contract: ``plot_front(trials, front, objectives, path, baseline=None)`` takes DataFrames as
returned by ``SearchResult.trials()``/``pareto()`` (and optionally a baseline job's trials, drawn
in grey), draws one panel per objective pair with axis labels carrying units and directions, and
writes a PNG atomically (temporary file, then rename). matplotlib runs headless (Agg).
The trials of a co-design job (``space`` an ``AcceleratorSpace``, or without ``space`` a frame with
``hw_pe_rows``/``hw_pe_cols`` columns) are coloured by PE count (``pe_rows × pe_cols``, log scale,
a labelled colour bar per panel); the front keeps its size, black edge and red step line.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Sequence

from nas.jobs.objectives import Objective
from nas.report._accelerator import pe_counts


def _label(objective: Objective, frame) -> str:
    arrow = "↓" if objective.direction == "minimize" else "↑"
    source = frame.get(f"{objective.name}.source")
    provenance = f" [{source.dropna().iloc[0]}]" if source is not None and len(source.dropna()) else ""
    return f"{objective.name} {arrow}{provenance}"


def _pe_colours(complete, front, space):
    """``(PE count per evaluated point, colour norm)``, or None when the job searches no accelerator."""
    from matplotlib.colors import LogNorm

    evaluated = pe_counts(complete, space) if len(complete) else None
    if evaluated is None:
        return None
    on_front = pe_counts(front, space) if len(front) else None
    values = [v for v in (*evaluated, *(on_front if on_front is not None else ())) if v > 0]
    if not values:
        return None
    low, high = min(values), max(values)
    return evaluated, LogNorm(vmin=low, vmax=high if high > low else low * 2)


def _colour_bar(fig, ax, mappable, values) -> None:
    bar = fig.colorbar(mappable, ax=ax, pad=0.02)
    bar.set_label("PEs (pe_rows × pe_cols)")
    ticks = sorted({float(v) for v in values})
    if len(ticks) <= 8:
        bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        bar.minorticks_off()


def plot_front(trials, front, objectives: Sequence[Objective], path: Path, *, baseline=None,
               title: str = "", space=None) -> Path:
    """One panel per objective pair written to ``path`` (module doc); ``space``: the job's space."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [o.name for o in objectives]
    pairs = list(itertools.combinations(range(len(names)), 2)) or [(0, 0)]
    cols = min(3, len(pairs))
    rows = (len(pairs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.2 * rows), squeeze=False)
    complete = trials[trials["state"] == "complete"] if len(trials) else trials
    pes = _pe_colours(complete, front, space)
    for ax, (i, j) in zip(axes.flat, pairs):
        x, y = names[i], names[j]
        if len(complete) and pes is not None:
            dots = ax.scatter(complete[x], complete[y], s=12, c=pes[0], cmap="viridis", norm=pes[1], alpha=0.45,
                              label="evaluated (colour: PEs)")
            _colour_bar(fig, ax, dots, pes[0])
        elif len(complete):
            ax.scatter(complete[x], complete[y], s=12, c="tab:blue", alpha=0.35, label="evaluated")
        if baseline is not None and len(baseline):  # above the search's points: seeds may share archs
            done = baseline[baseline["state"] == "complete"]
            ax.scatter(done[x], done[y], s=16, c="0.55", marker="x", lw=0.8, zorder=2.5,
                       label="random search (baseline)")
        if len(front):
            ordered = front.sort_values(x)
            counts = pe_counts(ordered, space) if pes is not None else None
            colour = {"c": counts, "cmap": "viridis", "norm": pes[1]} if counts is not None else {"c": "tab:red"}
            ax.scatter(ordered[x], ordered[y], s=40, edgecolors="k", zorder=3, **colour,
                       label=f"Pareto front (all {len(names)} objectives)" if len(names) > 2 else "Pareto front")
            if len(names) == 2:
                ax.step(ordered[x], ordered[y], where="post", c="tab:red", lw=1, zorder=2)
        ax.set_xlabel(_label(objectives[i], trials))
        ax.set_ylabel(_label(objectives[j], trials))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()) if title else None)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path

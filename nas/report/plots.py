"""``front.png``: every pair of objectives, the Pareto front highlighted over all evaluations.

Contract: ``plot_front(trials, front, objectives, path, baseline=None)`` takes DataFrames as
returned by ``SearchResult.trials()``/``pareto()`` (and optionally a baseline job's trials, drawn
in grey), draws one panel per objective pair with axis labels carrying units and directions, and
writes a PNG atomically (temporary file, then rename). matplotlib runs headless (Agg).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Sequence

from nas.jobs.objectives import Objective


def _label(objective: Objective, frame) -> str:
    arrow = "↓" if objective.direction == "minimize" else "↑"
    source = frame.get(f"{objective.name}.source")
    provenance = f" [{source.dropna().iloc[0]}]" if source is not None and len(source.dropna()) else ""
    return f"{objective.name} {arrow}{provenance}"


def plot_front(trials, front, objectives: Sequence[Objective], path: Path, *, baseline=None,
               title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [o.name for o in objectives]
    pairs = list(itertools.combinations(range(len(names)), 2)) or [(0, 0)]
    cols = min(3, len(pairs))
    rows = (len(pairs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.2 * rows), squeeze=False)
    complete = trials[trials["state"] == "complete"] if len(trials) else trials
    for ax, (i, j) in zip(axes.flat, pairs):
        x, y = names[i], names[j]
        if len(complete):
            ax.scatter(complete[x], complete[y], s=12, c="tab:blue", alpha=0.35, label="evaluated")
        if baseline is not None and len(baseline):  # above the search's points: seeds may share archs
            done = baseline[baseline["state"] == "complete"]
            ax.scatter(done[x], done[y], s=16, c="0.55", marker="x", lw=0.8, zorder=2.5,
                       label="random search (baseline)")
        if len(front):
            ordered = front.sort_values(x)
            ax.scatter(ordered[x], ordered[y], s=40, c="tab:red", edgecolors="k", zorder=3,
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

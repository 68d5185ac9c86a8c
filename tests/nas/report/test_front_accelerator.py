"""The front of a co-design job: hw_id and a short accelerator column in the table (and the frame written
as CSV/JSON), and front.png coloured by PE count; other jobs look as before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hw_profiles  # noqa: F401 - registers the template source of "+hw(...)" spaces
from nas.jobs.objectives import Objective
from nas.report import plots
from nas.report._accelerator import accelerator_columns, pe_counts
from nas.report.tables import render_front_table
from search_spaces import get_space

SPACE = "tiny_mbv3+hw(zcu104)"


def _frame(space, templates, seed=0):
    """A trials/front frame like ``SearchResult.pareto()``'s: one row per template."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, template in enumerate(templates):
        arch = space.combine(space.base.sample(rng), template)
        rows.append({"trial": i, "state": "complete", "arch_id": arch.arch_id, **arch.to_dict(),
                     "acc": 0.9 - 0.01 * i, "acc.source": "predicted", "lat": 0.2 + 0.05 * i,
                     "lat.source": "estimated", "feasible": True})
    return pd.DataFrame(rows)


TEMPLATES = [{"pe_rows": 32, "pe_cols": 32},
             {"pe_rows": 16, "pe_cols": 8, "dataflow": "output_stationary", "weight_buffer_bytes": 32768}]


def test_the_table_of_a_co_design_front_names_each_accelerator():
    space = get_space(SPACE)
    frame = _frame(space, TEMPLATES)
    lines = render_front_table(frame, ["acc", "lat"], space=space).splitlines()
    assert lines[0].split()[:4] == ["trial", "arch_id", "hw_id", "accelerator"]
    ids = [space.hw_id(space.parse({p.name: row[p.name] for p in space.params})) for _, row in frame.iterrows()]
    assert lines[1].split()[:7] == ["0", frame["arch_id"][0], ids[0], "ws", "32x32", "256/128/256KiB", "0.9000"]
    assert lines[2].split()[:6] == ["1", frame["arch_id"][1], ids[1], "os", "16x8", "256/32/256KiB"]
    assert len({len(line) for line in lines}) == 1
    # a frame already extended (as `nas pareto --format csv` writes it) renders the same without the space
    extended = accelerator_columns(frame, space)
    assert list(extended.columns[:5]) == ["trial", "state", "arch_id", "hw_id", "accelerator"]
    assert list(extended["hw_id"]) == ids and extended["accelerator"][0] == "ws 32x32 256/128/256KiB"
    assert render_front_table(extended, ["acc", "lat"]).splitlines() == lines
    assert accelerator_columns(extended, space) is extended
    assert "hw_id" not in frame  # the caller's frame is left alone


def test_other_jobs_keep_their_table():
    space = get_space("tiny_mbv3")
    arch = space.largest()
    frame = pd.DataFrame([{"trial": 0, "arch_id": arch.arch_id, **arch.to_dict(), "acc": 0.5, "acc.source": "predicted"}])
    assert accelerator_columns(frame, space) is frame and accelerator_columns(frame, None) is frame
    assert render_front_table(frame, ["acc"], space=space) == render_front_table(frame, ["acc"])
    assert render_front_table(frame, ["acc"]).splitlines()[0].split() == ["trial", "arch_id", "acc", "[predicted]"]


def test_pe_counts():
    space = get_space(SPACE)
    frame = _frame(space, TEMPLATES)
    assert list(pe_counts(frame, space)) == [1024.0, 128.0]
    assert list(pe_counts(frame)) == [1024.0, 128.0]  # from the columns alone
    assert pe_counts(frame.drop(columns=["hw_pe_cols"]), space).tolist() == [1024.0, 512.0]  # device's 32
    assert pe_counts(frame.drop(columns=["hw_pe_cols"])) is None
    assert pe_counts(frame, get_space("tiny_mbv3")) is None


@pytest.mark.parametrize("with_space", [True, False])
def test_front_png_is_coloured_by_pe_count(tmp_path, monkeypatch, with_space):
    space = get_space(SPACE)
    trials = _frame(space, TEMPLATES + [{"pe_rows": 64, "pe_cols": 8}, {"pe_rows": 8, "pe_cols": 8}])
    front = trials.iloc[[0, 2]].reset_index(drop=True)
    bars = []
    real = plots._colour_bar
    monkeypatch.setattr(plots, "_colour_bar", lambda fig, ax, m, v: (bars.append(sorted(set(v))), real(fig, ax, m, v)))
    objectives = [Objective("acc", "acc", direction="maximize"), Objective("lat", "lat")]
    path = plots.plot_front(trials, front, objectives, tmp_path / "front.png", space=space if with_space else None)
    assert path.exists() and path.stat().st_size > 0
    assert bars == [[64.0, 128.0, 512.0, 1024.0]]  # one panel, one labelled colour bar
    bars.clear()
    plain = trials.drop(columns=[c for c in trials if c.startswith("hw_")])
    plots.plot_front(plain, plain.iloc[[0]], objectives, tmp_path / "plain.png")
    assert bars == [] and (tmp_path / "plain.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.png", "plain.png"]  # no temp file left

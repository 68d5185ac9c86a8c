"""The front table that `nas run`, `nas search` and `nas pareto` print (nas.report.tables)."""

from __future__ import annotations

import math

import pandas as pd

from nas.report.tables import EMPTY_FRONT, render_front_table


def _front() -> pd.DataFrame:
    return pd.DataFrame({"trial": [3, 11], "arch_id": ["aaaa", "bbbb"], "acc": [0.91234, 0.85],
                         "acc.source": ["measured", "measured"], "cpu_ms": [12.3456, 0.25],
                         "cpu_ms.source": ["predicted", "predicted"], "cpu_ms.measured_ms": [13.0, math.nan]})


def test_header_carries_provenance_and_values_are_aligned():
    lines = render_front_table(_front(), ["acc", "cpu_ms"], measured="cpu_ms").splitlines()
    assert lines[0].split() == ["trial", "arch_id", "acc", "[measured]", "cpu_ms", "[predicted]", "cpu_ms",
                                "[measured]"]
    assert lines[1].split() == ["3", "aaaa", "0.9123", "12.35", "13"]
    assert lines[2].split() == ["11", "bbbb", "0.8500", "0.2500"]  # not measured: blank
    assert len({len(line) for line in lines}) == 1


def test_without_measured_column_mixed_sources_and_empty():
    front = _front()
    front.loc[1, "acc.source"] = "predicted"
    lines = render_front_table(front, ["acc"]).splitlines()
    assert lines[0].split() == ["trial", "arch_id", "acc"]  # rows differ: each cell names its source
    assert lines[1].split() == ["3", "aaaa", "0.9123", "[measured]"]
    assert lines[2].split() == ["11", "bbbb", "0.8500", "[predicted]"]
    assert render_front_table(front.iloc[:0], ["acc"]) == EMPTY_FRONT
    assert render_front_table(front.iloc[:0], ["acc"], empty="(none yet)") == "(none yet)"

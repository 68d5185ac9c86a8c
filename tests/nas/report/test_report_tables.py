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


# ------------------------------------------------------------------------------- prediction intervals
def _with_intervals(coverage=(0.9, math.nan)) -> pd.DataFrame:
    front = _front()
    front["cpu_ms.profile"] = ["cpu@1", "cpu@1"]
    front["cpu_ms.spread"] = [0.5, 0.1]
    front["cpu_ms.lo"], front["cpu_ms.hi"] = [11.0, math.nan], [14.25, math.nan]
    front["cpu_ms.coverage"] = list(coverage)
    return front


def test_a_predicted_figure_with_an_interval_reads_value_lo_hi_and_the_coverage_is_stated_once():
    lines = render_front_table(_with_intervals(), ["acc", "cpu_ms"], measured="cpu_ms").splitlines()
    assert lines[1].split() == ["3", "aaaa", "0.9123", "12.35", "[11,", "14.25]", "13"]
    assert lines[2].split() == ["11", "bbbb", "0.8500", "0.2500"]  # no interval: the value alone
    assert lines[3] == "[lo, hi]: 90% prediction interval" and len(lines) == 4
    assert len({len(line) for line in lines[:3]}) == 1  # the table itself stays aligned


def test_intervals_of_differing_coverage_name_each_and_mixed_sources_keep_their_label():
    front = _with_intervals()
    front["acc.source"] = ["predicted", "measured"]
    front["acc.spread"] = [0.01, 0.0]
    front["acc.lo"], front["acc.hi"], front["acc.coverage"] = [0.9, math.nan], [0.95, math.nan], [0.8, math.nan]
    front["cpu_ms.source"] = ["predicted", "measured"]
    lines = render_front_table(front, ["acc", "cpu_ms"]).splitlines()
    assert lines[1].split() == ["3", "aaaa", "0.9123", "[0.9000,", "0.9500]", "[predicted]", "12.35", "[11,",
                                "14.25]", "[predicted]"]
    assert lines[-1] == "[lo, hi]: prediction interval, nominal coverage acc 80%, cpu_ms 90%"


def test_describe_prints_a_predicted_metric_with_its_interval_and_a_measured_one_with_its_iqr():
    from hw_profiles import Metric
    from nas.report.describe import describe_arch, render_text
    from search_spaces import get_space

    space = get_space("tiny_mbv3")
    info = describe_arch(space, space.smallest())
    info["devices"] = {"cpu": {
        "latency_ms": Metric(12.5, "ms", "predicted", "cpu@1", interval=(11.0, 15.0), coverage=0.9).to_dict(),
        "measured_ms": Metric(13.0, "ms", "measured", "cpu@1", spread=0.25).to_dict()}}
    lines = render_text(info).splitlines()
    predicted = next(line for line in lines if "latency_ms" in line)
    measured = next(line for line in lines if "measured_ms" in line)
    assert predicted.split()[:5] == ["latency_ms", "12.5", "[11,", "15]", "ms"] and "±" not in predicted
    assert measured.split()[:6] == ["measured_ms", "13", "ms", "±", "0.25", "(IQR)"]
    assert "[lo, hi]: 90% prediction interval" in [line.strip() for line in lines]
    assert not any("prediction interval" in line for line in render_text(describe_arch(space, space.smallest()))
                   .splitlines())

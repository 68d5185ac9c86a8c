"""Prediction intervals through the job store: a predicted Metric's ``interval`` and ``coverage``
are written to a real SQLite store, read back into records and the result frames, checked for
finiteness before writing, and a malformed stored interval is a damaged row, not a crash."""

from __future__ import annotations

import json
import math
import sqlite3
import warnings

import pytest

import search_toy
from hw_profiles import Metric
from nas.jobs._store_values import finite_only
from nas.jobs.objectives import Objective
from nas.jobs.records import metric_from_dict
from nas.jobs.results import load_job, row_metric
from nas.jobs.search import search
from nas.jobs.store import StoreWarning


_ARCH = search_toy.SPACE.parse({"a": 1, "b": 2, "c": "x", "d": 4})


def predicted_ms(arch) -> Metric:
    """A predicted latency with a 90% interval that depends on the arch (so rows differ)."""
    size = search_toy.size(arch)
    return Metric(value=size, unit="ms", source="predicted", profile="cpu@1", spread=0.5,
                  interval=(size - 1.0, size + 2.0), coverage=0.9)


def _forged(metric: Metric, **fields) -> Metric:
    """``metric`` with fields set past its checks, as a buggy producer could hand one over."""
    for name, value in fields.items():
        object.__setattr__(metric, name, value)
    return metric


def _non_finite_interval(arch) -> Metric:
    return _forged(predicted_ms(arch), interval=(float("nan"), 3.0))


def _objectives(latency=predicted_ms) -> list[Objective]:
    return [Objective("quality", search_toy.quality, direction="maximize"), Objective("ms", latency),
            Objective("size", search_toy.size, cheap=True)]


def _search(url: str, job: str, budget: int, objectives=None, **kw):
    return search(search_toy.SPACE, objectives or _objectives(), search_toy.constraints(), algorithm="random",
                  budget=budget, seed=0, storage=search_toy.storage(url), job=job, progress=False, **kw)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'nas.db'}"


def test_an_interval_round_trips_through_the_sqlite_store_and_the_frames(url):
    _search(url, "pi", 8)
    result = load_job("pi", storage=url, space=search_toy.SPACE)
    complete = [r for r in result.records() if r.state == "complete"]
    assert len(complete) == 8
    for record in complete:
        arch = search_toy.SPACE.parse(dict(record.arch))
        assert record.metrics["ms"] == predicted_ms(arch)  # value, interval, coverage: all back as written
        assert record.metrics["quality"].interval is None and record.metrics["quality"].coverage is None
    front = result.pareto()
    assert len(front)
    assert (front["ms.lo"] == front["ms"] - 1.0).all() and (front["ms.hi"] == front["ms"] + 2.0).all()
    assert (front["ms.coverage"] == 0.9).all()
    assert front["quality.lo"].isna().all() and front["quality.coverage"].isna().all()
    columns = list(front.columns)
    assert columns.index("ms.spread") < columns.index("ms.lo") < columns.index("ms.hi") < columns.index("ms.coverage")
    row = front.iloc[0]
    assert row_metric(row, "ms", unit="ms") == Metric(
        value=row["ms"], unit="ms", source="predicted", profile="cpu@1", spread=0.5,
        interval=(row["ms"] - 1.0, row["ms"] + 2.0), coverage=0.9)
    assert row_metric(row, "quality").interval is None


def test_a_non_finite_interval_fails_the_trial_and_nothing_non_finite_is_stored(url, tmp_path):
    # a store that let the NaN through could not read those rows back: the search would wait on them
    result = _search(url, "nan-pi", 5, _objectives(_non_finite_interval), wait_timeout_s=20)
    records = [r for r in result.job.records() if r.state != "pruned"]
    assert records and all(r.state == "fail" and "non-finite" in r.error and "ms interval lo" in r.error
                           for r in records)
    assert all("ms" not in r.metrics for r in records)  # the bad figure is not recorded
    with sqlite3.connect(tmp_path / "nas.db") as conn:
        for (text,) in conn.execute("SELECT value_json FROM trial_user_attributes"):
            json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} stored in a trial attribute"))


@pytest.mark.parametrize("bad", [{"interval": (1.0, math.inf)}, {"coverage": math.nan}],
                         ids=["inf-bound", "nan-coverage"])
def test_a_non_finite_bound_or_coverage_counts_as_a_non_finite_value(bad):
    good = predicted_ms(_ARCH)
    metrics = {"ok": good, "bad": _forged(predicted_ms(_ARCH), **bad)}
    kept, _, reasons = finite_only(metrics, {})
    assert list(kept) == ["ok"] and len(reasons) == 1 and reasons[0].startswith("metric bad ")


def test_old_metric_dicts_without_an_interval_still_load():
    old = {"value": 7.0, "unit": "ms", "source": "predicted", "profile": "cpu@1", "spread": 0.3}
    assert metric_from_dict(old) == Metric(value=7.0, unit="ms", source="predicted", profile="cpu@1", spread=0.3)
    new = metric_from_dict({**old, "interval": [6.0, 9.0], "coverage": 0.9})
    assert new.interval == (6.0, 9.0) and new.coverage == 0.9


@pytest.mark.parametrize("interval, coverage", [([1.0], 0.9), ("6,9", 0.9), ([6.0, None], 0.9), ([6.0, 9.0], None),
                                                ([8.0, 9.0], 0.9), ([6.0, 9.0], 1.5), (7, 0.9)])
def test_a_malformed_stored_interval_is_a_value_error(interval, coverage):
    blob = {"value": 7.0, "unit": "ms", "source": "predicted", "profile": "cpu@1", "spread": 0.3,
            "interval": interval, "coverage": coverage}
    with pytest.raises((ValueError, TypeError)):
        metric_from_dict(blob)


def test_a_store_with_a_malformed_interval_is_read_with_the_row_skipped(url, tmp_path):
    before = len(_search(url, "damaged", 6).job.records())
    with sqlite3.connect(tmp_path / "nas.db") as conn:
        trial_id, result = next((trial_id, json.loads(text)) for trial_id, text in conn.execute(
            "SELECT trial_id, value_json FROM trial_user_attributes WHERE key = 'result' ORDER BY trial_id")
            if "ms" in json.loads(text)["metrics"])
        result["metrics"]["ms"]["interval"] = ["low", "high"]
        conn.execute("UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = 'result'",
                     (json.dumps(result), trial_id))
        (arch_id,), = conn.execute("SELECT value_json FROM trial_user_attributes WHERE trial_id = ? AND "
                                   "key = 'arch_id'", (trial_id,)).fetchall()
    job = load_job("damaged", storage=url, space=search_toy.SPACE)
    with pytest.warns(StoreWarning, match="skipped 1 damaged"):
        records = job.job.records()
    assert len(records) == before - 1 and json.loads(arch_id) not in {r.arch_id for r in records}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        assert len(job.pareto())  # the rest of the job still reads

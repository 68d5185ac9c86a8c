"""The front stage of `nas run` with prediction intervals: the re-measured members against their
predicted latency's interval (FrontMeasurement, summary.json, the printed check), front.csv's
interval columns, and the exported subnet's objectives. No training, no device: a toy job in a real
SQLite store and a stub measurement."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest

import search_toy
from hw_profiles import Metric
from nas.jobs.objectives import Objective
from nas.jobs.search import search
from nas.pipeline._front import FrontMeasurement, interval_check, verify_front, write_front
from nas.pipeline._stages import FrontStageResult, _best_record, _front_check_line


def predicted_ms(arch) -> Metric:
    size = search_toy.size(arch)
    return Metric(value=size, unit="ms", source="predicted", profile="host-cpu@1", spread=0.5,
                  interval=(size - 1.0, size + 1.0), coverage=0.9)


def _measurement(trial: int, measured: float, predicted: Metric | None = None) -> FrontMeasurement:
    predicted = predicted or Metric(value=10.0, unit="ms", source="predicted", profile="host-cpu@1", spread=0.5,
                                    interval=(9.0, 11.0), coverage=0.9)
    return FrontMeasurement(trial=trial, arch_id=f"a{trial}", predicted_ms=predicted,
                            measured_ms=Metric(value=measured, unit="ms", source="measured", profile="host-cpu@1",
                                               spread=0.1), error_pct=round((10.0 - measured) / measured * 100, 1))


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('front') / 'nas.db'}"
    objectives = [Objective("quality", search_toy.quality, direction="maximize"), Objective("ms", predicted_ms),
                  Objective("size", search_toy.size, cheap=True)]
    return search(search_toy.SPACE, objectives, search_toy.constraints(), algorithm="random", budget=12, seed=0,
                  storage=search_toy.storage(url), job="front", progress=False)


def test_a_measurement_round_trips_with_its_interval_and_says_whether_it_fell_inside():
    inside, outside = _measurement(1, 10.5), _measurement(2, 12.0)
    assert inside.inside is True and outside.inside is False
    data = json.loads(json.dumps(outside.to_json()))
    assert data["predicted_ms"]["interval"] == [9.0, 11.0] and data["predicted_ms"]["coverage"] == 0.9
    assert data["inside"] is False
    assert FrontMeasurement.from_json(data) == outside
    assert interval_check([inside, outside]) == {"inside": 1, "checked": 2, "coverage": 0.9,
                                                 "inside_at_run_speed": None, "checked_at_run_speed": 0}
    # measured beside the profile's reference too: the latency at the run's speed against the model-only interval
    at_speed = Metric(value=10.2, unit="ms", source="measured", profile="host-cpu@1", spread=0.1)
    both = FrontMeasurement(**{**vars(outside), "at_run_speed_ms": at_speed, "model_interval": (9.5, 10.5)})
    assert both.inside is False and both.inside_at_run_speed is True
    assert FrontMeasurement.from_json(json.loads(json.dumps(both.to_json()))) == both
    assert interval_check([inside, both])["inside_at_run_speed"] == 1
    assert _front_check_line([both]).endswith("at the profile run's machine speed, 1 of 1 inside the model's own interval")


def test_an_old_summary_record_without_interval_or_unit_still_loads():
    old = {"trial": 4, "arch_id": "abc", "error_pct": -3.1,
           "predicted_ms": {"value": 10.0, "source": "predicted", "profile": "host-cpu@1", "spread": 0.5},
           "measured_ms": {"value": 10.3, "unit": "ms", "source": "measured", "profile": "host-cpu@1",
                           "spread": 0.1, "precision": None}}
    record = FrontMeasurement.from_json(old)
    assert record.predicted_ms == Metric(value=10.0, unit="ms", source="predicted", profile="host-cpu@1", spread=0.5)
    assert record.inside is None and record.to_json()["inside"] is None
    assert interval_check([record]) is None


def test_the_front_check_counts_members_inside_and_says_why_there_is_no_interval():
    lines = [_front_check_line([_measurement(1, 10.5), _measurement(2, 12.0), _measurement(3, 9.5)])]
    plain = Metric(value=10.0, unit="ms", source="predicted", profile="host-cpu@1", spread=0.5)
    lines.append(_front_check_line([_measurement(1, 10.5, plain)]))
    assert lines == ["front check: 2 of 3 re-measured members inside their 90% prediction interval",
                     "front check: no prediction interval: the latency model has none (built before intervals, "
                     "or with too few fit subnets for its coverage); rebuild it with nas profile (more --samples)"]
    stage = FrontStageResult(status="done", frame=[0, 1], measured=(_measurement(1, 10.5), _measurement(2, 12.0)),
                             csv="front.csv", png="front.png")
    assert stage.to_json()["inside_interval"] == {"inside": 1, "checked": 2, "coverage": 0.9,
                                                  "inside_at_run_speed": None, "checked_at_run_speed": 0}


def test_verify_front_builds_the_prediction_with_the_rows_interval(job, monkeypatch):
    import nas.jobs.config

    measured = Metric(value=7.5, unit="ms", source="measured", profile="host-cpu@1", spread=0.1)
    monkeypatch.setattr(nas.jobs.config, "host_measurer", lambda space, profile: lambda arch: {"latency_ms": measured})
    front = job.pareto()
    records = verify_front(front, search_toy.SPACE, "host-cpu", "ms", 3, progress=False)
    assert records
    for r in records:
        row = front[front["trial"] == r.trial].iloc[0]
        assert r.predicted_ms.interval == (row["ms"] - 1.0, row["ms"] + 1.0) and r.predicted_ms.coverage == 0.9
        assert r.predicted_ms.unit == "ms" and r.inside == (row["ms"] - 1.0 <= 7.5 <= row["ms"] + 1.0)


def test_front_csv_carries_the_interval_columns(job, tmp_path):
    front = job.pareto()
    write_front(tmp_path, front, job.trials(), None, job.objectives, title="t")
    with open(tmp_path / "front.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(front) > 0
    for row in rows:
        assert float(row["ms.lo"]) == float(row["ms"]) - 1.0 and float(row["ms.hi"]) == float(row["ms"]) + 1.0
        assert float(row["ms.coverage"]) == 0.9 and row["quality.lo"] == row["quality.coverage"] == ""


def test_the_exported_subnets_objectives_carry_the_interval(job):
    best = job.pareto().iloc[0]
    record = _best_record(best, SimpleNamespace(predicted_latency_ms=None, formats={}, weights="trained"),
                          job.objectives, budget=100.0)
    ms, quality = record["objectives"]["ms"], record["objectives"]["quality"]
    assert ms["interval"] == [best["ms"] - 1.0, best["ms"] + 1.0] and ms["coverage"] == 0.9
    assert ms["source"] == "predicted" and ms["spread"] == 0.5
    assert quality["interval"] is None and quality["coverage"] is None
    json.dumps(record, allow_nan=False)  # strict JSON, as summary.json is written

"""`nas profile`: a real onnxruntime run end to end on tiny_mbv3, the latency model it leaves, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw_profiles import MeasuredCostModel, MeasurementFailedError
from nas.cli import main
from nas.profiling.latency_model import LatencyModel, LatencyModelError
from nas.profiling.device import ProfileJobError, ProfileResult, ProfileSettings, profile_device, render_report
from search_spaces import get_space

FAST = ProfileSettings(samples=10, coverage=10, repeats=3, warmup=1, seed=3)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "host"
    report = profile_device(get_space("tiny_mbv3"), "host-cpu", out, settings=FAST, progress=False)
    return out, report


def test_profile_writes_a_usable_latency_model(profiled):
    out, report = profiled
    assert sorted(p.name for p in out.iterdir()) == ["latency_model.json", "measurements.jsonl", "report.json"]
    assert json.loads((out / "report.json").read_text()) == report.to_json()
    assert json.loads((out / "latency_model.json").read_text())["report"] == report.to_json()
    assert ProfileResult.from_json(report.to_json()) == report
    assert report.device == "host-cpu@1" and report.backend == "onnxruntime"
    assert report.n_fit + report.n_held_out == report.samples == 10
    for name in ("kernel_level", "arch_level", "macs_proxy"):
        assert set(report.held_out[name]) >= {"within_10pct", "spearman", "rmse"}
    assert 0.0 <= report.repeatability["within_10pct"] <= 1.0
    rows = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and {r["source"] for r in rows} == {"measured"}
    assert all(r["latency_ms"] > 0 and r["iqr_ms"] >= 0 and r["raw_latency_ms"] > 0 for r in rows)
    held = [r for r in rows if r["split"] == "held_out"]
    assert held and all(r["remeasured_ms"] > 0 for r in held)
    # drift correction: every value is its ratio to the reference beside it, at the run's reference median
    scale = report.drift["reference_ms"]["median"]
    for r in rows:
        assert r["latency_ms"] == pytest.approx(r["ratio"] * scale)
    # 8 fit subnets cannot bound a 90% interval (the conformal rank 9 exceeds 8): none, said in the report
    assert report.intervals == {"kernel_level": None, "arch_level": None}
    assert "too few fit subnets" in render_report(report, out)

    space = get_space("tiny_mbv3")
    model = LatencyModel.load(out)
    rng = np.random.default_rng(99)
    fresh = [space.sample(rng) for _ in range(3)]
    metrics = model.predict(fresh, predictor="arch_level")  # any subnet: features need no table
    assert [m.source for m in metrics] == ["predicted"] * 3
    assert all(m.profile == "host-cpu@1" and m.unit == "ms" and m.value > 0 for m in metrics)
    # the space's covering archs were measured too: every subnet's layers are in the table
    assert not any(model.kernel_level.missing([space.layers(space.sample(rng))]) for _ in range(300))
    assert {w.workload for a in space.covering_archs() for w in space.layers(a)} <= set(model.kernel_level.layer_latency_ms)
    # the measured subnets are predicted near their measurement by the fitted kernel-level model
    measured = {r["arch_id"]: r["latency_ms"] for r in rows}
    archs = [space.parse(r["arch"]) for r in rows]
    predicted = [m.value for m in model.predict(archs, predictor="kernel_level")]
    ratio = np.array(predicted) / np.array([measured[a.arch_id] for a in archs])
    assert np.median(np.abs(ratio - 1)) < 0.5


def test_existing_output_folder_is_refused_before_measuring(profiled, monkeypatch):
    out, _ = profiled
    monkeypatch.setattr(MeasuredCostModel, "measure_paired", lambda *a, **k: pytest.fail("measured anyway"))
    with pytest.raises(ProfileJobError, match="not empty"):
        profile_device(get_space("tiny_mbv3"), "host-cpu", out, settings=FAST, progress=False)


def test_a_failed_measurement_leaves_no_folder(tmp_path, monkeypatch):
    calls = []

    def fail_on_second(self, items, reference):
        calls.append(len(items))
        if len(calls) > 1:
            raise MeasurementFailedError("onnxruntime session creation failed: boom")
        return original(self, items, reference)

    original = MeasuredCostModel.measure_paired
    monkeypatch.setattr(MeasuredCostModel, "measure_paired", fail_on_second)
    settings = ProfileSettings(samples=10, coverage=0, repeats=1, warmup=0, chunk=4)
    with pytest.raises(MeasurementFailedError, match="boom"):
        profile_device(get_space("tiny_mbv3"), "host-cpu", tmp_path / "out", settings=settings, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs,match", [({"samples": 5}, "samples"), ({"holdout": 0.9}, "holdout"),
                                          ({"backend": "tensorrt"}, "backend"), ({"threads": 0}, "threads"),
                                          ({"chunk": 0}, "chunk")])
def test_bad_settings(kwargs, match):
    with pytest.raises(ProfileJobError, match=match):
        ProfileSettings(**kwargs)


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["profile", "--device", "a100", "--space", "tiny_mbv3", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gpu profile" in err and "host-cpu" in err
    assert main(["profile", "--device", "nope", "--space", "tiny_mbv3", "--out", str(tmp_path / "o")]) == 2
    assert "host-cpu" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_loading_a_missing_or_foreign_model(tmp_path, profiled):
    with pytest.raises(LatencyModelError, match="nas profile"):
        LatencyModel.load(tmp_path)
    out, _ = profiled
    with pytest.raises(LatencyModelError, match="tiny_mbv3"):
        LatencyModel.load(out, space=get_space("ofa_mbv3"))


@pytest.mark.slow
def test_a_quantized_space_is_profiled_with_its_int8_layers_as_their_own_workloads(tmp_path):
    space = get_space("tiny_mbv3+q")
    out = tmp_path / "q"
    report = profile_device(space, "host-cpu", out, settings=ProfileSettings(samples=10, coverage=0, repeats=2,
                                                                             warmup=1, seed=5), progress=False)
    assert report.samples == 10
    model = LatencyModel.load(out)
    assert model.space.name == "tiny_mbv3+q"
    rows = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    workloads = set(model.kernel_level.layer_latency_ms)
    assert {w.precision for w in workloads} == {"int8", "fp32"}  # the same op in both formats: two workloads
    archs = [space.parse(r["arch"]) for r in rows[:3]]
    for arch, metric in zip(archs, model.predict(archs, predictor="kernel_level")):
        assert metric.precision == space.policy(arch).label and metric.value > 0


def test_front_members_are_remeasured_beside_the_profiles_reference(profiled):
    from hw_profiles import get_profile
    from nas.profiling.remeasure import model_interval, remeasurer

    out, report = profiled
    model = LatencyModel.load(out)
    ref_arch, ref_ms = model.reference()
    assert ref_arch.arch_id == report.drift["reference_arch_id"] and ref_ms == report.drift["reference_ms"]["median"]
    arch = model.space.sample(np.random.default_rng(5))
    again = remeasurer(model, get_profile("host-cpu"), warmup=1, repeats=3)(arch)
    for m in (again.measured, again.at_run_speed):
        assert m.source == "measured" and m.profile == "host-cpu@1" and m.precision == "fp32" and m.value > 0
    assert again.at_run_speed.value != again.measured.value  # scaled by the ratio to the reference
    assert remeasurer(model, get_profile("rpi4")) is None  # not the model's device
    assert model_interval(model, 1.0) is None  # 8 fit subnets: no interval to compare with

"""Calibrated latency intervals: out-of-fold scores, the conformal entry, and a profile run's intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw_profiles import MeasuredCostModel, Metric
from hw_profiles.measured import PairedMetric
from nas.profiling._intervals import bounds, interval_entry, log_scores, out_of_fold
from nas.profiling.device import ProfileSettings, profile_device, render_report
from nas.profiling.latency_model import LatencyModel, LatencyModelError
from search_spaces import get_space


def test_out_of_fold_never_predicts_a_row_with_a_model_that_saw_it():
    seen_by = {}

    def fit(rows):
        def predict(test):
            assert not set(test) & set(rows)
            for t in test:
                seen_by[int(t)] = True
            return np.full(len(test), float(len(rows)))
        return predict

    predicted = out_of_fold(fit, 23, seed=0)
    assert sorted(seen_by) == list(range(23)) and set(predicted) <= {18.0, 19.0}


def test_entry_covers_lognormal_errors_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.1, 10, 4000)
    noisy = truth * np.exp(rng.normal(0, 0.1, truth.size))  # a predictor off by ~10% (log-normal)
    cal, test = slice(0, 2000), slice(2000, None)
    entry = interval_entry(coverage=0.9, cv_scores=log_scores(truth[cal], noisy[cal]), drift=np.zeros(0),
                           test_measured=truth[test], test_predicted=noisy[test], test_remeasured_raw=truth[test])
    assert entry["model_log_q"] == pytest.approx(1.645 * 0.1, rel=0.08)  # the normal 95th percentile of |e|
    assert entry["drift_log_q"] == 0 and entry["log_q"] == entry["model_log_q"]
    assert abs(entry["held_out_coverage"] - 0.9) < 0.03 and abs(entry["remeasured_coverage"] - 0.9) < 0.03
    lo, hi = bounds(np.array([2.0]), entry)[0]
    assert lo < 2.0 < hi and hi / 2.0 == pytest.approx(2.0 / lo)
    assert entry["median_rel_width"] == pytest.approx((hi - lo) / 2.0)


def test_drift_widens_the_interval_in_quadrature():
    scores, drift = np.full(50, 0.1), np.full(50, 0.2)
    entry = interval_entry(coverage=0.9, cv_scores=scores, drift=drift, test_measured=[1.0], test_predicted=[1.0],
                           test_remeasured_raw=[1.3])
    assert entry["log_q"] == pytest.approx(np.hypot(0.1, 0.2))
    assert entry["remeasured_coverage"] == 0.0  # a 30% miss is outside a ±25% interval


def test_too_few_fit_subnets_give_no_interval():
    assert interval_entry(coverage=0.9, cv_scores=np.ones(8), drift=np.zeros(3), test_measured=[1.0],
                          test_predicted=[1.0], test_remeasured_raw=[1.0]) is None
    assert bounds(np.array([1.0, 2.0]), None) == [None, None]


# ------------------------------------------------------------------ a profile run (timing stood in)
def _stand_in(self, items, reference):
    """``measure_paired`` without timing: ms from parameter counts, the reference drifting by ±20%."""
    def ms(module):
        return 0.05 + 1e-5 * sum(p.numel() for p in module.parameters())

    rng = np.random.default_rng(len(items))
    out = []
    for module, _ in items:
        k = float(np.exp(rng.uniform(-0.2, 0.2)))  # the machine's speed during this item
        ref = ms(reference[0])
        out.append(PairedMetric(item=Metric(value=ms(module) * k, unit="ms", source="measured",
                                            profile=self.profile.ref, spread=0.001),
                                reference_ms=ref * k, ratio=ms(module) / ref, ratio_iqr=0.001 / ref))
    return out


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("intervals") / "host"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MeasuredCostModel, "measure_paired", _stand_in)
        report = profile_device(get_space("tiny_mbv3"), "host-cpu", out, progress=False,
                                settings=ProfileSettings(samples=40, coverage=0, repeats=1, warmup=0, seed=1,
                                                         interval=0.8))
    return out, report


def test_profile_calibrates_and_checks_each_interval(profiled):
    out, report = profiled
    for name in ("kernel_level", "arch_level"):
        entry = report.intervals[name]
        assert entry["coverage"] == 0.8 and entry["n_calibration"] == report.n_fit
        assert 0 < entry["drift_log_q"] <= 0.2 + 1e-9  # the stand-in's ±20% machine drift, at most
        assert entry["log_q"] == pytest.approx(np.hypot(entry["model_log_q"], entry["drift_log_q"]))
        assert 0 <= entry["held_out_coverage"] <= 1 and 0 <= entry["remeasured_coverage"] <= 1
    text = render_report(report, out)
    assert "interval (nominal 80%)" in text and "kernel_level" in text.split("interval (nominal")[1]


def test_predictions_carry_the_interval_of_their_predictor(profiled):
    out, report = profiled
    space = get_space("tiny_mbv3")
    rows = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    archs = [space.parse(r["arch"]) for r in rows[:5]]
    model = LatencyModel.load(out)
    for name in ("kernel_level", "arch_level"):
        k = np.exp(report.intervals[name]["log_q"])
        for m in model.predict(archs, predictor=name):
            assert m.source == "predicted" and m.coverage == 0.8
            assert m.interval == pytest.approx((m.value / k, m.value * k))


def test_an_edited_interval_is_refused(profiled):
    out, _ = profiled
    data = json.loads((out / "latency_model.json").read_text())
    data["report"]["intervals"]["arch_level"]["log_q"] = 0.01  # a narrower interval than calibrated
    with pytest.raises(LatencyModelError, match="log_q"):
        LatencyModel.from_dict(data)
    entry = json.loads((out / "latency_model.json").read_text())["report"]["intervals"]["arch_level"]
    for edit, match in (({"model_log_q": 0.0, "drift_log_q": 0.0, "log_q": 0.0}, "median_rel_width"),
                        ({"n_calibration": 1}, "n_fit"), ({"coverage": 0.99}, "cannot bound")):
        data["report"]["intervals"]["arch_level"] = {**entry, **edit}
        with pytest.raises(LatencyModelError, match=match):  # a zero-width or invented interval
            LatencyModel.from_dict(data)
    data["report"]["intervals"]["arch_level"] = None  # no interval: predictions without one
    metrics = LatencyModel.from_dict(data).predict([get_space("tiny_mbv3").sample(np.random.default_rng(0))],
                                                   predictor="arch_level")
    assert metrics[0].interval is None and metrics[0].coverage is None

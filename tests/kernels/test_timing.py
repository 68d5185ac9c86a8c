"""The timing protocol: interleaved repeats, order statistics, argument validation."""

from __future__ import annotations

import pytest

from kernels import timing
from kernels.timing import Timing, measure, summarize


def test_repeats_are_interleaved_after_warmup():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    result = measure(fns, warmup=2, repeats=3, threads=1)
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up, per callable
    assert calls[6:] == ["a", "b", "c"] * 3  # round-robin repeats
    assert list(result) == ["a", "b", "c"]
    assert all(isinstance(t, Timing) and t.repeats == 3 and t.warmup == 2 and t.threads == 1 for t in result.values())
    assert result["b"].backend == "b"


def test_warm_calls_precede_each_timed_call_untimed(monkeypatch):
    calls = []
    ticks = iter(range(0, 10_000, 1000))
    monkeypatch.setattr(timing.time, "perf_counter_ns", lambda: next(ticks))
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    result = measure(fns, warmup=0, repeats=2, threads=1, warm_calls=1)
    assert calls == ["a", "a", "b", "b"] * 2  # each timed call right after its own warm call
    assert result["a"].repeats == 2 and result["a"].median_s == pytest.approx(1e-6)  # one clock step per timed call
    with pytest.raises(ValueError, match="warm_calls must be an integer >= 0"):
        measure(fns, repeats=1, threads=1, warm_calls=-1)


def test_statistics_with_a_fake_clock(monkeypatch):
    # each call of "fast" takes 1..10 ms, "slow" 100 ms: the clock advances by the call's duration
    state = {"t": 0}
    monkeypatch.setattr(timing.time, "perf_counter_ns", lambda: state["t"])
    durations = iter(range(1, 11))

    def fast():
        state["t"] += next(durations) * 1_000_000

    def slow():
        state["t"] += 100_000_000

    result = measure({"fast": fast, "slow": slow}, warmup=0, repeats=10, threads=2)
    f, s = result["fast"], result["slow"]
    assert f.median_s == pytest.approx(5.5e-3)
    assert f.iqr_s == pytest.approx(4.5e-3)  # p75 7.75 ms - p25 3.25 ms
    assert f.p10_s <= f.median_s <= f.p90_s
    assert s.median_s == pytest.approx(0.1) and s.iqr_s == pytest.approx(0.0)
    assert f.median_ms == pytest.approx(5.5)


def test_real_clock_invariants():
    t = measure({"sum": lambda: sum(range(1000))}, warmup=1, repeats=15, threads=1)["sum"]
    assert 0 < t.p10_s <= t.median_s <= t.p90_s and t.iqr_s >= 0 and t.repeats == 15


@pytest.mark.parametrize("kwargs, match", [
    ({"fns": {}}, "non-empty"),
    ({"fns": {"x": 3}}, "not callable: 3"),
    ({"warmup": -1}, "warmup.*-1"),
    ({"repeats": 0}, "repeats.*0"),
    ({"threads": 0}, "threads.*0"),
    ({"threads": 1.5}, "threads.*1.5"),
])
def test_bad_arguments_show_the_value(kwargs, match):
    args = {"fns": {"x": lambda: None}, "warmup": 0, "repeats": 1, "threads": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        measure(args.pop("fns"), **args)


def test_summarize_rejects_empty():
    with pytest.raises(ValueError, match="non-empty"):
        summarize([], warmup=0, threads=1, backend="x")


def _fake_clock(monkeypatch):
    """A clock that only advances when a callable 'runs' (by its own duration)."""
    state = {"t": 0}
    monkeypatch.setattr(timing.time, "perf_counter_ns", lambda: state["t"])
    return state


def test_paired_ratios_cancel_a_drifting_machine(monkeypatch):
    state = _fake_clock(monkeypatch)
    speed = {"k": 1.0}  # the machine gets 3x slower halfway: raw medians move, ratios do not

    def work(ns):
        def fn():
            state["t"] += int(ns * speed["k"])
        return fn

    item, ref = work(300_000), work(100_000)  # 0.3 ms and 0.1 ms per call
    calls = {"n": 0}

    def slowing_ref():
        calls["n"] += 1
        if calls["n"] > 60:
            speed["k"] = 3.0
        ref()

    result = timing.measure_paired({"a": item}, slowing_ref, warmup=1, repeats=20, threads=1, burst_s=1e-3)
    t = result["a"]
    assert t.burst == 4  # ceil(1 ms / 0.3 ms) back-to-back calls per timed sample
    assert t.ratio_median == pytest.approx(3.0) and t.ratio_iqr == pytest.approx(0.0)
    assert t.item.p90_s > 2 * t.item.p10_s  # the raw timings did see the drift


def test_paired_validates_its_arguments():
    with pytest.raises(ValueError, match="non-empty mapping"):
        timing.measure_paired({}, lambda: None, threads=1)
    with pytest.raises(ValueError, match="callables"):
        timing.measure_paired({"a": lambda: None}, "not callable", threads=1)
    with pytest.raises(ValueError, match="repeats"):
        timing.measure_paired({"a": lambda: None}, lambda: None, repeats=0, threads=1)

"""One timing protocol for every backend.

Contract: ``measure(fns, warmup=, repeats=, threads=, warm_calls=0)`` calls every callable ``warmup``
times, then runs ``repeats`` rounds; each round calls every callable once (after ``warm_calls``
untimed calls), in the order of ``fns``
(round-robin, interleaved), so that backends compared side by side share the same machine noise.
Each call is timed with ``time.perf_counter_ns``. The result per name is a :class:`Timing` in
seconds: median, IQR (p75 - p25), p10 and p90 over the ``repeats`` samples. ``threads`` is only
recorded (the callables own their thread settings); ``backend`` defaults to the dict key.
Caveat: interleaved multi-threaded backends disturb each other through idle threads that busy-wait
(onnxruntime's pool, torch's OpenMP pool); build onnxruntime runners with ``spin=False`` for
side-by-side runs, and time one backend alone for absolute numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Wall-clock statistics of one callable, in seconds."""

    median_s: float
    iqr_s: float
    p10_s: float
    p90_s: float
    repeats: int
    warmup: int
    threads: int
    backend: str

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3

    @property
    def iqr_ms(self) -> float:
        return self.iqr_s * 1e3


def summarize(samples_s, *, warmup: int, threads: int, backend: str) -> Timing:
    """Statistics of raw samples (seconds)."""
    a = np.asarray(samples_s, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"samples must be a non-empty 1-D sequence, got shape {a.shape}")
    p10, p25, p50, p75, p90 = np.percentile(a, [10, 25, 50, 75, 90])
    return Timing(median_s=float(p50), iqr_s=float(p75 - p25), p10_s=float(p10), p90_s=float(p90),
                  repeats=int(a.size), warmup=warmup, threads=threads, backend=backend)


def check_protocol(*, warmup: int, repeats: int, threads: int = 1) -> None:
    """``ValueError`` showing the bad value unless warmup >= 0, repeats >= 1 and threads >= 1."""
    for name, value, minimum in (("warmup", warmup, 0), ("repeats", repeats, 1), ("threads", threads, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def measure(fns: Mapping[str, Callable[[], object]], *, warmup: int = 5, repeats: int = 30,
            threads: int, warm_calls: int = 0) -> dict[str, Timing]:
    """Time each callable with interleaved repeats; returns ``{name: Timing}`` in ``fns`` order.

    ``warm_calls`` untimed calls precede each timed call of a callable within a round, so that it is
    timed with its own weights in the caches, as in deployment, not its neighbour's. Measured on 20
    tiny_mbv3 subnets (onnxruntime, ~0.15 ms each): taking turns call by call read 1.6-2.3x the
    latency of each subnet timed alone; with one warm call, within ~10% of it."""
    if not isinstance(fns, Mapping) or not fns:
        raise ValueError(f"fns must be a non-empty mapping name -> callable, got {fns!r}")
    for name, fn in fns.items():
        if not callable(fn):
            raise ValueError(f"fns[{name!r}] is not callable: {fn!r}")
    check_protocol(warmup=warmup, repeats=repeats, threads=threads)
    if isinstance(warm_calls, bool) or not isinstance(warm_calls, int) or warm_calls < 0:
        raise ValueError(f"warm_calls must be an integer >= 0, got {warm_calls!r}")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for _ in range(repeats):
        for name in names:
            fn = fns[name]
            for _ in range(warm_calls):
                fn()
            start = clock()
            fn()
            samples[name].append((clock() - start) * 1e-9)
    return {name: summarize(samples[name], warmup=warmup, threads=threads, backend=name) for name in names}


@dataclass(frozen=True)
class PairedTiming:
    """An item timed beside a reference, round by round (:func:`measure_paired`): the item's and the
    reference's per-call :class:`Timing`, and the median and IQR over rounds of item / reference
    (a ratio the machine's speed at the time largely cancels out of). ``burst`` calls per timed sample."""

    item: Timing
    reference: Timing
    ratio_median: float
    ratio_iqr: float
    burst: int


def burst_size(fn: Callable[[], object], burst_s: float, *, probes: int = 3) -> int:
    """Calls of ``fn`` (already warm) that last about ``burst_s`` seconds together (>= 1), from the
    fastest of ``probes`` timed calls."""
    if burst_s <= 0:
        return 1
    fastest = min(_timed(fn, 1) for _ in range(probes))
    return max(1, min(10_000, int(np.ceil(burst_s / max(fastest, 1e-7)))))


def _timed(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``calls`` back-to-back calls."""
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) * 1e-9 / calls


def measure_paired(fns: Mapping[str, Callable[[], object]], reference: Callable[[], object], *, warmup: int = 5,
                   repeats: int = 30, threads: int, burst_s: float = 1e-3) -> dict[str, PairedTiming]:
    """Time each callable against ``reference``: every round times each item, then the reference right
    after it, each as one burst of back-to-back calls lasting about ``burst_s`` (after one untimed
    warm call, so both run with their own weights in cache). Per-call times are burst time / calls.

    Why (measured on tiny_mbv3 subnets of 0.2-0.4 ms, onnxruntime, this 2-core shared host, 30
    subnets measured three times minutes apart): raw medians agreed within ±10% for 0-97% of the
    subnets depending on the machine's drift; scaled by the reference's median over a 10-item chunk,
    for 67-100%; with per-round ratios and ~1 ms bursts, for 93-100%."""
    if not isinstance(fns, Mapping) or not fns:
        raise ValueError(f"fns must be a non-empty mapping name -> callable, got {fns!r}")
    if not all(callable(fn) for fn in [*fns.values(), reference]):
        raise ValueError("fns and reference must be callables")
    check_protocol(warmup=warmup, repeats=repeats, threads=threads)
    names = list(fns)
    for fn in [*fns.values(), reference]:
        for _ in range(warmup):
            fn()
    bursts = {name: burst_size(fns[name], burst_s) for name in names}
    ref_burst = burst_size(reference, burst_s)
    item_s = {name: [] for name in names}
    ref_s = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            fns[name]()
            item_s[name].append(_timed(fns[name], bursts[name]))
            reference()
            ref_s[name].append(_timed(reference, ref_burst))
    out = {}
    for name in names:
        ratios = np.asarray(item_s[name]) / np.asarray(ref_s[name])
        p25, p50, p75 = np.percentile(ratios, [25, 50, 75])
        out[name] = PairedTiming(item=summarize(item_s[name], warmup=warmup, threads=threads, backend=name),
                                 reference=summarize(ref_s[name], warmup=warmup, threads=threads, backend="reference"),
                                 ratio_median=float(p50), ratio_iqr=float(p75 - p25), burst=bursts[name])
    return out

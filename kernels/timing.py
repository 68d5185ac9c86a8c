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

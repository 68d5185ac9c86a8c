"""Time one module on one backend: the step every measured latency goes through.

Contract: ``time_module(module, example_input, backend=, threads=, warmup=, repeats=)`` builds the
backend's runner (:func:`kernels.runners.make_runner`, onnxruntime threads not busy-waiting, as
``nas profile`` and ``nas export`` time it, so the three agree) and times it alone with the one
protocol (:func:`kernels.timing.measure`); returns the :class:`~kernels.timing.Timing` (seconds). Runner
failures are :class:`~kernels.errors.KernelError`; bad protocol arguments ``ValueError``.
"""

from __future__ import annotations

from kernels.runners import make_runner
from kernels.timing import Timing, check_protocol, measure


def time_module(module, example_input, *, backend: str, threads: int, warmup: int = 5,
                repeats: int = 30) -> Timing:
    """Median/IQR latency of one batch of ``example_input`` through ``module`` on ``backend``."""
    check_protocol(warmup=warmup, repeats=repeats, threads=threads)
    runner = make_runner(backend, module, example_input, threads=threads, spin=False)
    return measure({backend: runner}, warmup=warmup, repeats=repeats, threads=threads)[backend]

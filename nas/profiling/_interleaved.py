"""Drift-robust measurement for ``nas profile``: chunks timed turn by turn beside a reference.

On a shared host the same subnet's latency drifts by 10-30% over minutes (measured: back-to-back
re-measurements agree within ±10% for 97% of subnets, re-measurements minutes apart for 25-60%).
So items are measured in chunks: each chunk's modules and one fixed *reference* subnet are timed
taking turns call by call (``MeasuredCostModel.measure_interleaved``; each timed call follows an
untimed warm call of the same module, so it runs with its own weights in cache), so they see the
same machine state. With ``drift_correction`` every item's latency (and IQR) is then rescaled by
``reference median over the whole run / reference median in its chunk``: values are reported at
the run's typical machine speed. Raw values and the reference are kept for the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from hw_profiles import MeasuredCostModel, Metric
from nas._progress import progress_bar

Build = Callable[[], "tuple[object, tuple[int, ...]]"]  # -> (module, input_shape)


@dataclass(frozen=True)
class Sample:
    raw: Metric  # as measured
    reference_ms: float  # the reference subnet's median in the same chunk


def measure_chunks(model: MeasuredCostModel, builds: Sequence[Build], reference: Build, *, chunk: int, desc: str,
                   unit: str, progress: bool) -> list[Sample]:
    """Measure every item, ``chunk`` at a time, each chunk interleaved with the reference."""
    samples: list[Sample] = []
    with progress_bar(len(builds), desc=desc, unit=unit, enabled=progress) as bar:
        for start in range(0, len(builds), chunk):
            part = builds[start:start + chunk]
            metrics = model.measure_interleaved([b() for b in part] + [reference()])
            samples += [Sample(m, metrics[-1].value) for m in metrics[:-1]]
            bar.update(len(part))
    return samples


def corrected(samples: Sequence[Sample], *, scale_ms: float, enabled: bool) -> list[Metric]:
    """The samples' metrics, rescaled to ``scale_ms`` of reference latency when ``enabled``."""
    if not enabled:
        return [s.raw for s in samples]
    out = []
    for s in samples:
        k = scale_ms / s.reference_ms
        out.append(Metric(value=s.raw.value * k, unit=s.raw.unit, source=s.raw.source, profile=s.raw.profile,
                          spread=s.raw.spread * k))
    return out


def reference_scale(*runs: Sequence[Sample]) -> float:
    """The reference's median over every chunk of every run."""
    return float(np.median([s.reference_ms for run in runs for s in run]))

"""Drift-robust measurement for ``nas profile``: every item timed beside a reference, round by round.

On a shared host the same subnet's latency drifts by 10-80% over minutes (measured on this 2-core
host: raw re-measurements minutes apart agreed within ±10% for 0-97% of tiny_mbv3 subnets,
depending on the minute). So items are measured in chunks (to bound the sessions held at once),
and within a chunk every item is timed with a fixed *reference* subnet right after it, round by
round (``MeasuredCostModel.measure_paired``: ~1 ms bursts, one untimed warm call before each). The
median over rounds of item / reference is a ratio the machine's speed cancels out of. With
``drift_correction`` every item's latency is ``ratio × the reference's median over the whole run``
(and its spread the ratio's IQR on that scale): values are reported at the run's typical machine
speed. Without it, the raw medians are kept. Raw values and the reference beside each item are
kept for the record, and their spread is the drift a later re-measurement can see
(:func:`drift_ratios`).
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
    reference_ms: float  # the reference subnet's median beside it
    ratio: float  # median over rounds of item / reference
    ratio_iqr: float


def measure_chunks(model: MeasuredCostModel, builds: Sequence[Build], reference: Build, *, chunk: int, desc: str,
                   unit: str, progress: bool) -> list[Sample]:
    """Measure every item beside the reference, ``chunk`` modules built at a time."""
    samples: list[Sample] = []
    with progress_bar(len(builds), desc=desc, unit=unit, enabled=progress) as bar:
        for start in range(0, len(builds), chunk):
            part = builds[start:start + chunk]
            pairs = model.measure_paired([b() for b in part], reference())
            samples += [Sample(p.item, p.reference_ms, p.ratio, p.ratio_iqr) for p in pairs]
            bar.update(len(part))
    return samples


def corrected(samples: Sequence[Sample], *, scale_ms: float, enabled: bool) -> list[Metric]:
    """The samples' metrics at ``scale_ms`` of reference latency when ``enabled``, else as measured."""
    if not enabled:
        return [s.raw for s in samples]
    return [Metric(value=s.ratio * scale_ms, unit=s.raw.unit, source=s.raw.source, profile=s.raw.profile,
                   spread=s.ratio_iqr * scale_ms) for s in samples]


def reference_scale(*runs: Sequence[Sample]) -> float:
    """The reference's median over every item of every run."""
    return float(np.median([s.reference_ms for run in runs for s in run]))


def drift_ratios(run: Sequence[Sample], scale_ms: float) -> np.ndarray:
    """|log(reference beside an item / ``scale_ms``)| over the items of ``run``: how far the machine's
    speed at a random moment of the run was from the speed values are reported at."""
    ref = np.array([s.reference_ms for s in run], dtype=np.float64)
    return np.abs(np.log(ref / scale_ms))

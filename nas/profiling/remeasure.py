"""Re-measuring subnets against a latency model: raw, and at the profile run's machine speed.

Contract: :func:`remeasurer` returns ``arch -> Remeasured`` for a :class:`LatencyModel` whose report
recorded its reference subnet: each subnet is measured on the model's device, backend and threads
beside that reference, round by round, exactly as ``nas profile`` measured (``measure_paired``),
giving its raw latency (``measured``, this moment's machine speed) and ``ratio × the run's reference
median`` (``at_run_speed``, the speed the model's predictions are at). The first is what a user's
timer reads now and belongs in the model's full interval (which includes the run's drift); the
second isolates the model's own error and belongs in :func:`model_interval` (drift left out). A
model without a recorded reference gives None: measure raw and compare with the full interval only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from hw_profiles import Metric, Profile
from nas.profiling._intervals import scaled
from nas.profiling.builds import labelled, measured_for
from nas.profiling.latency_model import LatencyModel
from search_spaces import ArchConfig


@dataclass(frozen=True)
class Remeasured:
    measured: Metric  # raw: the machine's speed now
    at_run_speed: Metric  # ratio to the reference × the profile run's reference median


def remeasurer(model: LatencyModel, profile: Profile, *, warmup: int = 5,
               repeats: int = 20) -> Callable[[ArchConfig], Remeasured] | None:
    """``arch -> Remeasured`` on ``profile``, the model's device (module docstring), with the model's
    backend and threads; None without a recorded reference or when ``profile`` is not the model's."""
    from hw_profiles.tvm_measured import measured_model_for

    reference = model.reference()
    if reference is None or profile.ref != model.profile_ref:
        return None
    ref_arch, ref_ms = reference
    profile = dataclasses.replace(profile, spec=dataclasses.replace(profile.spec, backend=model.backend,
                                                                     threads=model.threads))
    space = model.space
    measured = measured_for(space, measured_model_for, profile, warmup=warmup, repeats=repeats)
    ref = (measured.build(ref_arch), (1, *space.input_shape(ref_arch)))

    def remeasure(arch: ArchConfig) -> Remeasured:
        pair = measured.measure_paired([(measured.build(arch), (1, *space.input_shape(arch)))], ref)[0]
        at_speed = dataclasses.replace(pair.item, value=pair.ratio * ref_ms, spread=pair.ratio_iqr * ref_ms)
        tagged = labelled({"raw": pair.item, "at": at_speed}, space, arch)
        return Remeasured(measured=tagged["raw"], at_run_speed=tagged["at"])

    return remeasure


def model_interval(model: LatencyModel, value: float, *, predictor: str | None = None) -> tuple[float, float] | None:
    """``value``'s interval without the drift part (the predictor's own error at the run's speed)."""
    entry = model.report.interval(predictor or model.default)
    return None if entry is None else scaled(value, entry["model_log_q"])

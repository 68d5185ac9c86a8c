"""``CostModel``: device metrics of one network from its layer table.

Contract: ``metrics(layers)`` is a pure function of the ``LayerSpec`` rows (no I/O, no torch),
returns ``{metric name: Metric}`` with units in the names (``latency_ms``, ``peak_sram_kb``…) and
every ``Metric`` tagged ``estimated`` with ``profile.ref`` (and, where the figure depends on the
network's numeric format, ``precision``: ``fp32``, ``int8`` or ``mixed``, from the rows'
``LayerSpec.precision`` and the format the device runs unset rows in). Per-layer work is cached per distinct
``LayerSpec`` so that search can call it thousands of times a second. Measured models
(``hw_profiles.measured``, ``hw_profiles.tvm_measured``) read no layer table: they time the module
their build function returns, in whatever format it computes, and read no row precision.
"""

from __future__ import annotations

from typing import Sequence

from hw_profiles.metric import Metric
from hw_profiles.profile import Profile
from search_spaces import LayerSpec, NASError


class CostModel:
    kind = ""

    def __init__(self, profile: Profile) -> None:
        if profile.kind != self.kind:
            raise ValueError(f"{type(self).__name__} needs a {self.kind} profile, got {profile.ref} ({profile.kind})")
        self.profile = profile

    def metrics(self, layers: Sequence[LayerSpec]) -> dict[str, Metric]:
        raise NotImplementedError

    def _estimate(self, value: float, unit: str, precision: str | None = None) -> Metric:
        return Metric(value=float(value), unit=unit, source="estimated", profile=self.profile.ref, precision=precision)


class MeasurementRequiredError(NASError, RuntimeError):
    """The profile's numbers come from measuring on the device, which this call cannot do."""


_MODELS = {"gpu": ("hw_profiles.gpu", "GpuRooflineModel"), "mcu": ("hw_profiles.mcu", "McuCostModel"),
           "fpga": ("hw_profiles.fpga", "FpgaCostModel")}


def cost_model_for(profile: Profile) -> CostModel:
    """The analytic cost model for ``profile``'s kind. CPU profiles are measured, not estimated:
    they raise :class:`MeasurementRequiredError`; build ``hw_profiles.measured.MeasuredCostModel``
    with a build function instead."""
    import importlib

    if profile.kind not in _MODELS:
        raise MeasurementRequiredError(
            f"{profile.ref} is a {profile.kind} profile: its latency is measured on the device, not estimated; "
            "use hw_profiles.measured.MeasuredCostModel(profile, build=..., input_shape=...).measure(arch) "
            "(`nas describe --device` does this)")
    module, name = _MODELS[profile.kind]
    return getattr(importlib.import_module(module), name)(profile)

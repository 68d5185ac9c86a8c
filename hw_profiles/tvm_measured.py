"""``TvmMeasuredCostModel``: latency of the TVM-compiled subnet, on this host or on a board over RPC.

Contract: for a ``cpu`` profile. ``measure(arch)`` builds the module, compiles it with TVM for the
profile's target (:func:`hw_profiles.targets.tvm_target_spec`), applying the MetaSchedule records
of the tuning ``database`` folder where it has them (``nas tune-space``; the untuned default
schedule elsewhere), and times it: on the board through TVM RPC when the profile names an
``rpc_key`` (:func:`hw_profiles.targets.rpc_endpoint`), else on this host. It returns
``{"tvm_latency_ms": Metric}``, plus ``"latency_ms"`` (the same figure) when TVM is the profile's
own backend (``backend = "tvm"``, or any board measured over RPC). Metrics are ``measured``, tagged
``profile.ref`` with the IQR as spread. :func:`measured_model_for` picks the measuring model a
profile calls for, and refuses a board that is not reachable over RPC rather than time it here.
"""

from __future__ import annotations

from typing import Sequence

from hw_profiles.measured import CudaMeasuredCostModel, MeasuredCostModel, MeasurementFailedError, PairedMetric
from hw_profiles.metric import Metric
from hw_profiles.profile import Profile
from hw_profiles.targets import rpc_endpoint, tvm_target_spec
from search_spaces import ArchConfig, NASError


class RemoteBoardError(NASError, ValueError):
    """A board profile cannot be measured on this host and names no RPC key."""


class TvmMeasuredCostModel(MeasuredCostModel):
    kind = "cpu"

    def __init__(self, profile: Profile, *, database=None, rpc_tracker: str | None = None, **kwargs) -> None:
        super().__init__(profile, **kwargs)
        self.target_spec = tvm_target_spec(profile)
        self.rpc = rpc_endpoint(profile, tracker=rpc_tracker)
        if self.rpc is None and not self.target_spec.is_host:
            raise RemoteBoardError(f"{profile.ref} is a {profile.spec.mtriple} board: it is measured over TVM RPC, "
                                   "so its profile needs rpc_key (and a tracker the board registers with)")
        self.database = database

    @property
    def backend(self) -> str:
        return "tvm-rpc" if self.rpc else "tvm"

    @property
    def threads(self) -> int:
        return self.target_spec.threads

    def _keys(self) -> tuple[str, ...]:
        own = self.rpc is not None or self.profile.spec.backend == "tvm"
        return ("tvm_latency_ms", "latency_ms") if own else ("tvm_latency_ms",)

    def measure(self, arch: ArchConfig) -> dict[str, Metric]:
        shape = tuple(int(n) for n in self.input_shape(arch))
        metric = self.measure_module(self.build(arch), shape)
        return {key: metric for key in self._keys()}

    def measure_paired(self, items: Sequence[tuple[object, tuple[int, ...]]],
                       reference: tuple[object, tuple[int, ...]]) -> list[PairedMetric]:
        """One after the other, then the reference once: compiled libraries cannot take turns call by
        call (and compiling the reference per item would double the work), so every item's ratio is to
        the chunk's reference measurement (its IQR is the item's, relative to the reference)."""
        measured = [self.measure_module(module, shape) for module, shape in items]
        ref = self.measure_module(*reference)
        return [PairedMetric(item=m, reference_ms=ref.value, ratio=m.value / ref.value, ratio_iqr=m.spread / ref.value)
                for m in measured]

    def measure_module(self, module, input_shape: tuple[int, ...]) -> Metric:
        import torch

        from kernels import KernelError
        from kernels.tvm.db import open_database
        from kernels.tvm.measure import measure_tvm

        x = torch.randn(tuple(input_shape), generator=torch.Generator().manual_seed(self.seed))
        try:
            database = open_database(self.database, create=False) if self.database else None
            result = measure_tvm(module, x, self.target_spec, database=database, rpc=self.rpc,
                                 warmup=self.warmup, repeats=self.repeats)
        except KernelError as err:
            where = f"over RPC ({self.rpc})" if self.rpc else "on this host"
            raise MeasurementFailedError(f"measuring with TVM on {self.profile.ref} {where} failed: {err}") from err
        return Metric(value=result.timing.median_ms, unit="ms", source="measured", profile=self.profile.ref,
                      spread=result.timing.iqr_ms)


def measured_model_for(profile: Profile, *, rpc_tracker: str | None = None, database=None, **kwargs) -> MeasuredCostModel:
    """The model that measures ``profile``: a board over RPC (TVM), a local GPU (CUDA), or this host
    with the profile's backend (TVM from ``database`` when the backend is tvm)."""
    if profile.kind == "gpu":
        return CudaMeasuredCostModel(profile, **kwargs)
    if profile.kind == "cpu" and (profile.spec.rpc_key or profile.spec.mtriple or profile.spec.backend == "tvm"):
        return TvmMeasuredCostModel(profile, database=database, rpc_tracker=rpc_tracker, **kwargs)
    return MeasuredCostModel(profile, **kwargs)

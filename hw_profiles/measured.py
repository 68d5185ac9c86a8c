"""``MeasuredCostModel``: CPU latency measured on this host through ``kernels``.

Contract: built from a ``cpu`` profile, a ``build`` function ``ArchConfig -> nn.Module`` (e.g. a
supernet's ``extract``; ``nas`` passes it in, since ``hw_profiles`` never imports ``supernets``)
and an ``input_shape`` function ``ArchConfig -> tuple`` giving the full input shape, batch
included (e.g. ``(1, C, H, W)``). ``measure(arch)`` builds the module, makes a runner for the
profile's ``CpuSpec.backend`` with ``CpuSpec.threads`` threads (0: ``os.cpu_count()``), times it
with :func:`kernels.timing.measure` and returns ``{"latency_ms": Metric}`` tagged ``measured``,
with the median as value, the IQR (ms) as spread and ``profile.ref``. It does I/O (temp ONNX
files) and takes seconds, so search must call it after cheap constraints. ``metrics(layers)``
cannot measure a layer table and raises :class:`MeasurementRequiredError`. ``kernels`` (and so
torch) is imported lazily: ``import hw_profiles`` stays torch-free. Kernel failures become
:class:`MeasurementFailedError` (a ``NASError``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

from hw_profiles.cost_model import CostModel, MeasurementRequiredError
from hw_profiles.metric import Metric
from hw_profiles.profile import Profile
from kernels.timing import check_protocol
from search_spaces import ArchConfig, LayerSpec, NASError


class MeasurementFailedError(NASError, RuntimeError):
    """Building, exporting or running the network on the profile's backend failed."""


@dataclass(frozen=True)
class PairedMetric:
    """An item measured beside a reference (:meth:`MeasuredCostModel.measure_paired`): its own
    latency, the reference's median beside it (ms), and the median and IQR over rounds of
    item / reference latency."""

    item: Metric
    reference_ms: float
    ratio: float
    ratio_iqr: float


class MeasuredCostModel(CostModel):
    kind = "cpu"

    def __init__(self, profile: Profile, *, build: Callable[[ArchConfig], object],
                 input_shape: Callable[[ArchConfig], tuple], warmup: int = 5, repeats: int = 30,
                 seed: int = 0) -> None:
        super().__init__(profile)
        if not callable(build):
            raise ValueError(f"build must be a callable ArchConfig -> nn.Module, got {build!r}")
        if not callable(input_shape):
            raise ValueError(f"input_shape must be a callable ArchConfig -> tuple, got {input_shape!r}")
        check_protocol(warmup=warmup, repeats=repeats)
        self.build, self.input_shape = build, input_shape
        self.warmup, self.repeats, self.seed = warmup, repeats, seed

    @property
    def backend(self) -> str:
        return self.profile.spec.backend

    @property
    def threads(self) -> int:
        return self.profile.spec.threads or (os.cpu_count() or 1)

    def metrics(self, layers: Sequence[LayerSpec]) -> dict[str, Metric]:
        raise MeasurementRequiredError(
            f"{self.profile.ref} is measured: a layer table cannot be run; build the network and use "
            "MeasuredCostModel.measure(arch)")

    def measure(self, arch: ArchConfig) -> dict[str, Metric]:
        """Build ``arch``, time one batch on the profile's backend; ``{"latency_ms": Metric}``."""
        shape = tuple(int(n) for n in self.input_shape(arch))
        try:
            module = self.build(arch)
        except NASError:
            raise
        except Exception as err:  # noqa: BLE001 - a user's build function
            raise MeasurementFailedError(f"building {arch.arch_id} for {self.profile.ref} failed: {err}") from err
        return {"latency_ms": self.measure_module(module, shape)}

    def measure_paired(self, items: Sequence[tuple[object, tuple[int, ...]]],
                       reference: tuple[object, tuple[int, ...]]) -> list[PairedMetric]:
        """Time several ``(module, input_shape)`` pairs each beside ``reference`` round by round
        (:func:`kernels.timing.measure_paired`: ~1 ms bursts, one untimed warm call before each), so
        that the ratio to the reference cancels the machine's drift: on a shared host latency drifts
        by 10-80% over minutes. onnxruntime sessions are built with ``spin=False`` so that idle
        threads do not disturb the others."""
        import torch

        from kernels import KernelError
        from kernels.runners import make_runner
        from kernels.timing import measure_paired

        def runner(module, shape):
            x = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(self.seed))
            return make_runner(self.backend, _ready(module), x, threads=self.threads, spin=False)

        try:
            runners = {str(i): runner(module, shape) for i, (module, shape) in enumerate(items)}
            timings = measure_paired(runners, runner(*reference), warmup=self.warmup, repeats=self.repeats,
                                     threads=self.threads)
        except KernelError as err:
            raise MeasurementFailedError(f"measuring on {self.profile.ref} ({self.backend}) failed: {err}") from err
        return [PairedMetric(item=Metric(value=t.item.median_ms, unit="ms", source="measured", profile=self.profile.ref,
                                         spread=t.item.iqr_ms),
                             reference_ms=t.reference.median_ms, ratio=t.ratio_median, ratio_iqr=t.ratio_iqr)
                for t in timings.values()]

    def measure_module(self, module, input_shape: tuple[int, ...]) -> Metric:
        """Time ``module`` on a seeded random input of ``input_shape``; the latency ``Metric`` (ms)."""
        import torch

        from kernels import KernelError
        from kernels.latency import time_module

        x = torch.randn(tuple(input_shape), generator=torch.Generator().manual_seed(self.seed))
        try:
            timing = time_module(_ready(module), x, backend=self.backend, threads=self.threads,
                                 warmup=self.warmup, repeats=self.repeats)
        except KernelError as err:
            raise MeasurementFailedError(f"measuring on {self.profile.ref} ({self.backend}) failed: {err}") from err
        return Metric(value=timing.median_ms, unit="ms", source="measured", profile=self.profile.ref,
                      spread=timing.iqr_ms)


def _ready(module):
    """An ``nn.Module`` in eval mode; a built artefact (``kernels.quantize.QuantizedOnnx``) as it is."""
    return module.eval() if hasattr(module, "eval") else module


def gpu_unavailable_reason(profile: Profile) -> str | None:
    """None when ``profile``'s card is the local GPU (its ``cuda_name`` is in the device name), else why not."""
    from kernels.cuda import cuda_device_name, cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is not None:
        return reason
    name = cuda_device_name()
    wanted = profile.spec.cuda_name
    if not wanted or wanted.lower() not in name.lower():
        return f"the local GPU is {name!r}, not {profile.name} (cuda_name={wanted!r})"
    return None


class CudaMeasuredCostModel(MeasuredCostModel):
    """Latency measured on the local GPU for a ``gpu`` profile whose card is present (see
    :func:`gpu_unavailable_reason`), in the profile's default precision (fp16 or fp32), with torch
    and CUDA synchronisation. ``graph=True`` (default) replays a CUDA graph: kernel time without
    PyTorch's per-op CPU dispatch, which is what the roofline models; ``graph=False`` times eager
    PyTorch, dispatch included. Otherwise use the roofline estimate (``hw_profiles.gpu``)."""

    kind = "gpu"

    def __init__(self, profile: Profile, *, graph: bool = True, **kwargs) -> None:
        self.graph = graph
        super().__init__(profile, **kwargs)
        reason = gpu_unavailable_reason(profile)
        if reason is not None:
            raise MeasurementRequiredError(f"cannot measure on {profile.ref}: {reason}; its latency is "
                                           "roofline-estimated instead")

    @property
    def backend(self) -> str:
        name = "torch-cuda-graph" if self.graph else "torch-cuda"
        return f"{name}-fp32" if self.profile.spec.default_precision == "fp32" else name

    @property
    def threads(self) -> int:
        return 1

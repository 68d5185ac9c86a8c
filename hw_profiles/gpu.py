"""GPU roofline estimate: per layer max(FLOPs / effective peak, bytes / effective bandwidth)
plus a launch overhead per kernel. Used where no GPU is present to measure on.

Numeric format: a row runs at its ``LayerSpec.precision`` (int8 or fp32: that precision's peak
FLOP/s and bytes per element for its activations and weights); a row with none runs at the model's
``precision`` (the profile's ``default_precision``, fp16 on the shipped cards, unless given). A row
reads its input in its own format (a conversion at a format boundary is assumed fused into the
consuming kernel, as TensorRT fuses Q/DQ nodes: no extra kernel or traffic). ``latency_ms`` carries
``precision`` (``fp32``, ``int8`` or ``mixed``; None for an all-fp16 network, which that label does
not name). A row whose precision the profile has no ``peak_flops`` for raises ``ValueError``.

Transformer rows: a per-token ``linear`` is a GEMM over its tokens (FLOPs from its MACs, its weights
read once); an attention ``matmul`` reads both operands (q and k, or the scores and v) and writes
its output, with no weights; ``layernorm``, ``softmax`` and ``tokens`` have no MACs, so they are
memory-bound: their input and output, plus the layer norm's affine pair and the cls token and
position embedding. Each is one kernel (the token row's concatenation and add fused); a GELU is
fused into its ``linear`` (fc1) like every activation; a residual add is its own kernel."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from hw_profiles.analytic import layer_macs, layer_params, matmul_operand_elements
from hw_profiles.cost_model import CostModel
from hw_profiles.metric import Metric, layers_precision
from hw_profiles.profile import GpuSpec, Profile
from search_spaces import LayerSpec

BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}


def layer_kernels(layer: LayerSpec) -> int:
    """Kernels one row launches: the op (BN and activation, GELU too, fused), SE's
    pool/reduce/expand/scale, and the residual add."""
    return 1 + (4 if layer.se else 0) + (1 if layer.residual else 0)


def layer_bytes(layer: LayerSpec, element_bytes: int) -> int:
    """Activation reads and writes plus weight reads, at batch 1 (module doc: a matmul reads its second
    operand instead of weights; layer norm and the token row read their parameters)."""
    activations = layer.in_elements + layer.out_elements + matmul_operand_elements(layer)
    if layer.residual:
        activations += layer.out_elements  # the add reads the block input
    weights = layer.weights
    if layer.op in ("layernorm", "tokens"):
        weights = layer_params(layer)  # affine pair; cls token and position embedding
    return (activations + weights) * element_bytes


class GpuRooflineModel(CostModel):
    """Estimated batch-1 latency on a GPU profile (``precision`` defaults to the profile's)."""

    kind = "gpu"

    def __init__(self, profile: Profile, *, precision: str | None = None) -> None:
        super().__init__(profile)
        spec: GpuSpec = profile.spec
        self.precision = precision or spec.default_precision
        if self.precision not in spec.peak_flops or self.precision not in BYTES_PER_ELEMENT:
            raise ValueError(f"precision {self.precision!r} not in {profile.ref}'s peak_flops {sorted(spec.peak_flops)}")
        self._flops_per_s = spec.peak_flops[self.precision] * spec.compute_efficiency
        self._bytes_per_s = spec.memory_bandwidth_bytes_per_s * spec.memory_efficiency
        self._layer_seconds = lru_cache(maxsize=65536)(self._seconds)

    def _seconds(self, layer: LayerSpec) -> float:
        flops_per_s, precision = self._flops_per_s, self.precision
        if layer.precision is not None and layer.precision != precision:
            spec: GpuSpec = self.profile.spec
            precision = layer.precision
            if precision not in spec.peak_flops or precision not in BYTES_PER_ELEMENT:
                raise ValueError(f"a {precision} row: {self.profile.ref} has no peak_flops for it "
                                 f"(has {sorted(spec.peak_flops)})")
            flops_per_s = spec.peak_flops[precision] * spec.compute_efficiency
        compute = 2 * layer_macs(layer) / flops_per_s
        memory = layer_bytes(layer, BYTES_PER_ELEMENT[precision]) / self._bytes_per_s
        return max(compute, memory) + layer_kernels(layer) * self.profile.spec.launch_overhead_s

    def layer_latency_s(self, layer: LayerSpec) -> float:
        return self._layer_seconds(layer)

    def metrics(self, layers: Sequence[LayerSpec]) -> dict[str, Metric]:
        seconds = sum(self._layer_seconds(layer) for layer in layers)
        return {"latency_ms": self._estimate(seconds * 1e3, "ms", layers_precision(layers, unset=self.precision))}

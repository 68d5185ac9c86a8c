"""Analytic cost model of an int8 CNN accelerator template on an FPGA (mixed-precision rows too).

The template (``FpgaSpec``; its knobs are what accelerator co-exploration searches):

- a **weight-stationary PE array** of ``pe_rows`` × ``pe_cols`` MAC units at ``clock_hz``. Each row
  is a dot-product unit: it holds ``pe_cols`` weights of one output channel and reduces ``pe_cols``
  inputs per cycle. ``macs_per_dsp`` MACs share one DSP (two int8 MACs per DSP48E2);
- on-chip **input, weight and output buffers** (BRAM18K blocks of 2,304 bytes, rounded up per
  buffer), and DDR behind them at ``ddr_bandwidth_bytes_per_s`` (effective, not peak).

Rows run one after another (batch 1). Per row, ``cycles = max(compute, memory) + per_layer_overhead``:
DMA is double-buffered, so transfers overlap compute, and the overhead covers setup, the first
DDR access and pipeline fill/drain.

**Compute: what is unrolled.** Only output channels (over rows) and the reduction (over
columns); output pixels run one per cycle. Dense conv / pwconv / linear flatten the reduction to
``cin_per_group·k²`` (im2col): ``groups · ⌈cout_g/pe_rows⌉ · ⌈cin_g·k²/pe_cols⌉ · OH·OW``.
Depthwise (one input channel per output channel) maps ``pe_rows`` *channels* onto the rows, each
row reading its own channel's k×k window from a line buffer, and the **k² taps** onto the columns:
``⌈C/pe_rows⌉ · ⌈k²/pe_cols⌉ · OH·OW``. Only k² of the ``pe_cols`` lanes work: 9/32 = 28% for 3×3
on 32 columns, 49/64 = 77% for 7×7 (two passes); the per-row windows assume a line buffer that feeds
every row its own channel. ``layer_report`` shows this as ``utilisation`` = MACs / (compute cycles × PEs);
``effective_utilisation`` divides by all the row's cycles instead (memory stalls, overhead).

**The second dataflow: output-stationary** (``dataflow = "output_stationary"``). The same
``pe_rows`` × ``pe_cols`` array unrolls *output pixels* over rows and *output channels* over
columns: every PE owns one output (pixel, channel) and accumulates it over the whole reduction, one
MAC per cycle, while weights are broadcast along columns and inputs along rows. Dense rows take
``groups · ⌈cout_g/pe_cols⌉ · ⌈OH·OW/pe_rows⌉ · cin_g·k²`` cycles, depthwise rows
``⌈C/pe_cols⌉ · ⌈OH·OW/pe_rows⌉ · k²`` (no idle lanes: each PE reduces its own channel's taps), and
SE's FCs (one output pixel: one row of PEs works) ``⌈m/pe_cols⌉·C + ⌈C/pe_cols⌉·m``. So it wins on
depthwise rows and large maps and loses on small maps and the classifier, where weight-stationary
keeps every lane busy: a real structural choice for co-exploration. Off-chip traffic, buffers, the
vector unit and overheads are modelled alike for both. The formulas live in ``hw_profiles.fpga_rows``
(written once for one template or arrays of templates).

**Elementwise work** runs on a post-processing vector unit of ``pe_rows`` lanes, serially after the
row: ``gap`` costs ⌈C·H·W/pe_rows⌉ cycles. SE (on the dwconv row) adds its two FCs on the array
(⌈m/pe_rows⌉·⌈C/pe_cols⌉ + ⌈C/pe_rows⌉·⌈m/pe_cols⌉), one scale pass ⌈C·OH·OW/pe_rows⌉, and 2·C·m
weight bytes (the squeeze is accumulated while the output is written). Residual adds are fused into
the output pipeline: they cost no cycles, only the DDR read of the block input.

**Transformer rows** (``search_spaces.vit``), on the same template (an assumption: no softmax or
layer-norm engine of its own, as in a CNN accelerator reused for ViTs):

- a per-token ``linear`` over T tokens is a 1×1 conv over a T×1 map (T "pixels"), and
  ``patch_embed`` a dense conv (kernel = stride, no padding): the formulas above;
- an attention ``matmul`` is ``heads`` independent GEMMs (the grouped 1×1 op of ``LayerSpec``,
  groups = heads): QKᵀ reduces over the head dimension with T outputs per token, AV over the T
  scores with head-dimension outputs. Weight-stationary holds the second operand (k, or v) in the
  PEs where a conv holds weights; output-stationary broadcasts it. Both operands are activations:
  nothing is read as weights. q, k and v are one map, the q/k/v projection's output (3·w·T
  elements, in its format): they stay on chip for QKᵀ and AV exactly when that whole output stayed
  on chip (the chained-map rule below); otherwise the projection wrote them to DDR and QKᵀ reads q
  and k back, AV reads v (``fpga_rows.QkvSource``). A matmul costed alone, outside that row pattern,
  judges its stationary operand on its own (off chip when it does not fit). The input is streamed
  once per weight-buffer chunk of the stationary operand, as with weights;
- ``layernorm``, ``softmax`` and ``tokens`` run on the vector unit (``fpga_rows.VECTOR_PASSES``):
  layer norm 2 passes (statistics, normalise) and softmax 3 (max, exp-and-sum, scale; exp by a
  lookup table) of ⌈elements/pe_rows⌉ cycles over their input, the token row one pass over its
  output (the position-embedding add); the layer norm's affine pair and the cls token and position
  embedding are read from DDR at the weight bits. GELU is fused into fc1's output pipeline (a
  lookup table, like ReLU): free.

**Numeric formats** (a quantization policy sets ``LayerSpec.precision`` per row): a row's weights
and feature maps take its format's bits (``search_spaces.PRECISION_BITS``: int8 8/8, fp32 32/32); a
row with no precision takes the template's ``bit_width`` for both. The PE array, its DSPs and the
vector unit are ``bit_width``-bit integer datapaths with no float unit, so a wider row runs as a
multi-precision equivalent: each operand is split into ``bit_width``-bit digits and every pair of
digits is one pass over the array, ``passes = ⌈w_bits/bit_width⌉ · ⌈a_bits/bit_width⌉`` (how
bit-composable arrays build wide products from narrow ones, quadratic in the width: Bit Fusion,
Sharma et al., ISCA 2018). An fp32 row on the int8 array: 4 · 4 = 16 passes, treating fp32 as a
32-bit operand (its 24-bit mantissa would need 3 · 3 = 9, but exponent alignment and normalisation
have no hardware here, so 16 stands for both; an optimistic bound for a real float datapath all
the same: an fp32 multiply-add takes several DSP48E2s against half a DSP per int8 MAC). A row's
compute cycles (array and vector unit) and its MAC energy are multiplied by its passes;
``layer_report`` shows ``passes``, and ``utilisation`` counts MACs against array passes. Each map is
stored (on chip or in DDR) in the format of the row that writes it; the next row converts as it
loads (a cast in its input pipeline, free). The network input arrives in the first row's format;
a residual add reads its block input in the format that block input was written in. Metrics carry
``precision``: ``int8`` (rows int8, or unset on an 8-bit template), ``fp32``, ``mixed``, or None (a
plain network on a template that is not 8-bit).

**Off-chip traffic** (each row's bits per element, as above; biases and BN are folded and ignored):

- weights: read once per row (buffers are reused across rows, so nothing stays resident);
- feature maps: rows form a chain (a row's input is the previous row's output). A map that fits
  both the output buffer (where it is produced) and the input buffer (the two swap roles,
  ping-pong) **stays on chip**: it is never written or read. The network input and output always
  cross DDR. A bigger map is written by its producer and read by its consumer;
- tiling reuse: output-channel tiles are the outer loop, and the weights are split into
  ⌈weight bytes / weight_buffer⌉ chunks. If neither the whole input fits its buffer nor the whole
  weight set fits its buffer, the input is streamed from DDR once **per weight chunk**;
  otherwise once;
- a residual add reads the block input (the row's output shape) from DDR; when that map would
  have stayed on chip, its spill write is charged here too (×2).

Energy is ``(MACs·passes·energy_pj_per_mac + DRAM bytes·energy_pj_per_dram_byte)·1e-9 + static_power_w ·
latency`` in mJ. Resources: ``dsp = ⌈pe_rows·pe_cols / macs_per_dsp⌉``, ``bram18k`` = the three
buffers, each rounded up to 2,304-byte blocks (the raw 18 Kbit; byte-wide ports use 2,048, and
bank partitioning for ``pe_cols``-wide reads is ignored); a template over budget gives
``feasible`` 0. UltraRAM and LUTs are not modelled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple, Sequence

from hw_profiles.analytic import layer_macs
from hw_profiles.cost_model import CostModel
from hw_profiles.fpga_rows import (BRAM18K_BYTES, DATAFLOWS, QkvSource, bram_count, dsp_count, qkv_source_index,
                                   row_bits, row_cost, template_of)
from hw_profiles.fpga_space import check_template_ranges
from hw_profiles.metric import Metric, layers_precision
from hw_profiles.profile import FpgaSpec, Profile
from search_spaces import LayerSpec

__all__ = ["BRAM18K_BYTES", "DATAFLOWS", "TEMPLATE_FIELDS", "FpgaCostModel", "FpgaResources", "LayerCost", "QkvSource"]
TEMPLATE_FIELDS = ("dataflow", "pe_rows", "pe_cols", "bit_width", "clock_hz", "input_buffer_bytes",
                   "weight_buffer_bytes", "output_buffer_bytes", "macs_per_dsp", "per_layer_overhead_cycles")
"""The accelerator's own knobs; the rest of ``FpgaSpec`` describes the device and board."""

_CACHE_LIMIT = 200_000


@dataclass(frozen=True)
class FpgaResources:
    """What a template needs against what the device has."""

    dsp: int
    bram18k: int
    dsp_total: int
    bram18k_total: int

    @property
    def feasible(self) -> bool:
        return self.dsp <= self.dsp_total and self.bram18k <= self.bram18k_total

    @property
    def dsp_over(self) -> int:
        """DSP slices beyond the device's (0 when it fits)."""
        return max(0, self.dsp - self.dsp_total)

    @property
    def bram18k_over(self) -> int:
        """BRAM18K blocks beyond the device's (0 when it fits)."""
        return max(0, self.bram18k - self.bram18k_total)

    def to_dict(self) -> dict:
        return {"dsp": self.dsp, "dsp_total": self.dsp_total, "bram18k": self.bram18k,
                "bram18k_total": self.bram18k_total, "feasible": self.feasible, "dsp_over": self.dsp_over,
                "bram18k_over": self.bram18k_over}


class LayerCost(NamedTuple):
    macs: int
    compute_cycles: int  # passes included
    memory_cycles: float
    cycles: float  # max(compute, memory) + overhead
    dram_bytes: float
    passes: int = 1  # array passes per MAC: 1 at or under the template's bit width (module doc)


class FpgaCostModel(CostModel):
    """Estimated latency, energy and resources of the profile's accelerator template (see module doc)."""

    kind = "fpga"

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        spec: FpgaSpec = profile.spec
        # the profile schema's range checks (ProfileError, a ValueError), for specs built in code too
        check_template_ranges({f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}, "FpgaSpec")
        self.spec = spec
        self._template = template_of(spec)
        # by (edge, input bits, block input bits, q/k/v source); edge 1 = network input, 2 = network
        # output; the bits are None where they are the row's own activation bits
        self._caches: dict[tuple, dict] = {(edge, None, None, None): {} for edge in range(4)}
        self._plain_caches = tuple(self._caches[edge, None, None, None] for edge in range(4))  # the common case
        self._resources = self._count_resources()
        self._unset = "int8" if spec.bit_width == 8 else f"int{spec.bit_width}"

    # ------------------------------------------------------------------ template
    def with_template(self, **changes) -> "FpgaCostModel":
        """A model of the same device with ``FpgaSpec`` fields changed (e.g. ``pe_rows=64``). Its
        profile version gains the changes (``zcu104@2+pe_rows=64``), so metrics say which template
        they belong to."""
        valid = {f.name for f in dataclasses.fields(FpgaSpec)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise ValueError(f"unknown FpgaSpec field(s) {unknown}; valid: {', '.join(sorted(valid))}")
        if not changes:
            return type(self)(self.profile)
        tag = ",".join(f"{k}={v}" for k, v in sorted(changes.items()))
        profile = dataclasses.replace(self.profile, spec=dataclasses.replace(self.spec, **changes),
                                      version=f"{self.profile.version}+{tag}")
        return type(self)(profile)

    def _count_resources(self) -> FpgaResources:
        s = self.spec
        brams = int(bram_count(s.input_buffer_bytes, s.weight_buffer_bytes, s.output_buffer_bytes))
        return FpgaResources(dsp=int(dsp_count(s.pe_rows, s.pe_cols, s.bit_width, s.macs_per_dsp)), bram18k=brams,
                             dsp_total=s.dsp_total, bram18k_total=s.bram18k_total)

    def resources(self) -> FpgaResources:
        return self._resources

    # ------------------------------------------------------------------ per row
    def row_bits(self, layer: LayerSpec) -> tuple[int, int]:
        """(weight bits, activation bits) of a row: its format's, or the template's ``bit_width``."""
        return row_bits(layer, self._template)

    def layer_cost(self, layer: LayerSpec, edge: int = 0, in_bits: int | None = None,
                   block_input_bits: int | None = None, qkv: QkvSource | None = None) -> LayerCost:
        """One row's cost; ``edge`` bit 1: its input is the network input, bit 2: its output is the
        network output (both always cross DDR). ``in_bits``: the bits its input map was written in
        (the previous row's activation bits); ``block_input_bits``: those of the block input a
        residual add reads; None for either: the row's own. ``qkv``: an attention matmul's q/k/v
        projection (``fpga_rows.QkvSource``; None: q, k and v judged each on its own). Cached per
        distinct row and context."""
        own = self.row_bits(layer)[1]
        if qkv is not None and qkv.bits == own:
            qkv = qkv._replace(bits=None)
        key = (edge, None if in_bits == own else in_bits, None if block_input_bits == own else block_input_bits, qkv)
        cache = self._caches.get(key)
        if cache is None:
            cache = self._caches[key] = {}
        cost = cache.get(layer)
        if cost is None:
            if len(cache) > _CACHE_LIMIT:
                cache.clear()
            cost = cache[layer] = self._compute_cost(layer, *key)
        return cost

    def _compute_cost(self, layer: LayerSpec, edge: int, in_bits: int | None = None,
                      block_input_bits: int | None = None, qkv: QkvSource | None = None) -> LayerCost:
        compute, memory, cycles, dram, passes = row_cost(layer, self._template, edge, in_bits, block_input_bits,
                                                         qkv)
        return LayerCost(macs=layer_macs(layer), compute_cycles=int(compute), memory_cycles=float(memory),
                         cycles=float(cycles), dram_bytes=float(dram), passes=int(passes))

    def _costs(self, layers: Sequence[LayerSpec]) -> list[LayerCost]:
        last = len(layers) - 1
        costs = []
        plain = self._plain_caches
        start = 0  # first row of the current block
        prev = None
        for i, layer in enumerate(layers):
            edge = (i == 0) | ((i == last) << 1)
            in_bits = block_bits = None
            if prev is not None:
                if layer.block != prev.block:
                    start = i
                if prev.precision != layer.precision:
                    in_bits = self.row_bits(prev)[1]
            if layer.residual:
                source = layers[start - 1] if start > 0 else layers[0]  # wrote the block input
                if source.precision != layer.precision:
                    block_bits = self.row_bits(source)[1]
            qkv = None
            if layer.op == "matmul":
                found = qkv_source_index(layers, i)
                if found is not None:
                    producer = layers[found[0]]
                    qkv = QkvSource(producer.out_elements, self.row_bits(producer)[1], found[1])
            cost = plain[edge].get(layer) if in_bits is None and block_bits is None and qkv is None else None
            costs.append(cost if cost is not None else self.layer_cost(layer, edge, in_bits, block_bits, qkv))
            prev = layer
        return costs

    # ------------------------------------------------------------------ results
    def layer_report(self, layers: Sequence[LayerSpec]) -> list[dict]:
        """Per row: op, block, precision, passes, macs, compute_cycles, memory_cycles, cycles,
        dram_bytes, bound ("compute" or "memory"), utilisation (MACs × passes / (compute cycles ×
        PEs): how well the mapping fills the array) and effective_utilisation (MACs × passes / (all
        the row's cycles × PEs))."""
        pes = self.spec.pe_rows * self.spec.pe_cols
        report = []
        for layer, cost in zip(layers, self._costs(layers)):
            work = cost.macs * cost.passes
            report.append({
                "op": layer.op, "block": layer.block, "precision": layer.precision, "passes": cost.passes,
                "macs": cost.macs, "compute_cycles": cost.compute_cycles, "memory_cycles": cost.memory_cycles,
                "cycles": cost.cycles, "dram_bytes": cost.dram_bytes,
                "bound": "compute" if cost.compute_cycles >= cost.memory_cycles else "memory",
                "utilisation": work / (cost.compute_cycles * pes) if cost.compute_cycles else 0.0,
                "effective_utilisation": work / (cost.cycles * pes) if cost.cycles else 0.0,
            })
        return report

    def metrics(self, layers: Sequence[LayerSpec]) -> dict[str, Metric]:
        s = self.spec
        macs = cycles = dram = 0.0
        for cost in self._costs(layers):
            macs += cost.macs * cost.passes  # array MACs: a wide row's passes each cost a MAC's energy
            cycles += cost.cycles
            dram += cost.dram_bytes
        latency_ms = cycles / s.clock_hz * 1e3
        energy_mj = (macs * s.energy_pj_per_mac + dram * s.energy_pj_per_dram_byte) * 1e-9 \
            + s.static_power_w * latency_ms
        res = self._resources
        precision = layers_precision(layers, unset=self._unset)
        return {
            "latency_ms": self._estimate(latency_ms, "ms", precision),
            "energy_mj": self._estimate(energy_mj, "mJ", precision),
            "dsp": self._estimate(res.dsp, "DSP", precision),
            "bram18k": self._estimate(res.bram18k, "BRAM18K", precision),
            "feasible": self._estimate(1.0 if res.feasible else 0.0, "bool", precision),
        }

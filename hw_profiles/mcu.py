"""Microcontroller cost model: int8 inference with TinyEngine/CMSIS-NN-like kernels, and the fp32
rows of a mixed-precision network (a quantization policy, ``search_spaces.quantization``).

Metrics (all ``estimated``, tagged with the profile's ``name@version`` and the network's
``precision``: ``int8`` when every row is int8 or unset, ``fp32`` when every row is fp32, else
``mixed``); memory is in KiB (1 KiB = 1024 bytes), latency in milliseconds:

- ``peak_sram_kb``: the largest live set over the op sequence, plus ``runtime_sram_bytes``
  (stack, im2col buffers, runtime state). Activations take the row's activation bytes per
  element: 1 for int8 (and an unset row: the MCU's native int8), 4 for fp32. While an
  op runs, its input and output are live, and so is a residual block's input, held from the
  block's first op through its last (unless it *is* the op's input). Depthwise convs run in place
  (TinyEngine): max(in, out) plus one padded input channel of scratch, unless their input is a
  residual block input that must survive. SE needs its pooled vector and hidden vector (C + m
  elements) beside the dwconv output. ``gap``'s output is C elements. Scratch, SE vectors and
  ``gap``'s output are in the row's format; a held block input is in the format of the block's
  first row (which read it).
- **Format boundaries.** Every row reads and writes in its own format; the network input arrives
  in the first row's. Where a row's input was written in another format (the previous row's), the
  conversion is done by the consuming row as a separate pass before it runs (TFLite Micro's
  QUANTIZE/DEQUANTIZE op): while it runs, the input is live in both formats (plus any held block
  input); it costs one kernel call and ``elementwise_cycles_per_element`` per input element; the
  converted copy replaces the original (and is what a residual block holds). An attention matmul
  converts its second operand the same way where the q/k/v projection that wrote it used another
  format: QKᵀ converts k (as well as its input q), AV converts v: one more call and
  ``elementwise_cycles_per_element`` per element. Its two copies add no SRAM: k's, beside q and
  the held k/v, are no more than q's conversion; v's, beside the scores and the held v, no more
  than AV's own input and output. A plain or uniform network has no boundary, so it pays nothing.
- ``flash_kb``: per conv/linear (and SE conv) at the row's format (``hw_profiles.analytic``):
  int8: int8 weights, an int32 bias (BN folded) and a 4-byte requantisation scale per output
  channel; fp32: 4-byte weights and a 4-byte bias, no scale; plus ``runtime_flash_bytes``.
- ``latency_ms``: per op MACs / ``macs_per_cycle[op]`` (SE's two 1x1 convs at 1x1 are
  matrix-vector products: ``linear`` rate; an fp32 row uses ``McuSpec.float_rate(op)``:
  ``float_macs_per_cycle`` or, by default, half the int8 rate since the FPU has no SIMD MAC,
  see ``hw_profiles.profile.FLOAT_MAC_RATIO``), plus ``per_layer_overhead_cycles`` per kernel call
  (the op; SE's pool, reduce, expand and scale; a residual add; an h-swish; a format conversion), plus
  ``elementwise_cycles_per_element`` per element of gap input, residual add, h-swish output,
  SE (squeeze and scale: 2 per output element) and format conversion, over ``clock_hz``. ReLU is
  fused into the requantising clamp (free). Elementwise work costs the same per element in fp32
  (no requantisation, but no SIMD either; not measured).
- **Transformer rows** (``search_spaces.vit``). MAC rates: ``patch_embed`` and ``matmul`` take
  their own ``macs_per_cycle`` entry where the profile gives one, else the ``conv`` and ``pwconv``
  rates (``hw_profiles.profile.MCU_EXTRA_KINDS``); a ``linear`` over more than one token is a 1×1
  conv over the tokens (its weights reused per token): the ``pwconv`` rate; the classifier's single
  vector keeps the ``linear`` rate. Element-wise rows cost per element (``McuSpec.cycles_per_element``,
  defaults ``ELEMENT_CYCLE_DEFAULTS``): ``layernorm`` and ``softmax`` per input element, a GELU per
  output element of its ``linear`` (a separate kernel call, as TF Lite Micro runs it); ``tokens``
  adds the position embedding at ``elementwise_cycles_per_element`` per output element. Every row is
  one kernel call (a batched matmul loops over its heads inside one call). SRAM: each row's input
  and output as above (QKᵀ's output is the score buffer, heads × tokens² elements in the row's
  format; ``fc1``'s the MLP hidden activation), the held residual input, and an attention's k and v
  (``hw_profiles.analytic.attention_held_elements``: k and v beside QKᵀ, v beside the softmax and
  AV) in the format of the q/k/v projection that wrote them. Flash: weights and biases as above, the
  layer norms' affine pairs and the cls token and position embedding as fp32 (``analytic``).
- ``feasible`` (1.0/0.0, unit ``bool``), ``sram_over_kb``/``flash_over_kb`` (>= 0).
- ``patch_recompute_overhead``: extra MACs of patch-based inference / the network's MACs (0 off).

Patch-based inference (MCUNetV2), ``patch_first_stage=True``: the leading rows whose block is
``stem``, ``block0`` or ``stage1.*`` (cut before a block with SE, which needs whole-tensor pooling)
run patch by patch on a ``patches`` x ``patches`` grid of the stage's output. Each patch's
input ranges are found backwards through every row, exactly per axis: output rows [a, b) of a
conv with kernel k, stride s, pad k//2 need input rows [a*s - k//2, (b-1)*s + k - k//2),
clipped to the tensor (padding is generated, not stored). Memory while patching: the whole input
image (held until the last patch; conservative, a camera that returns patches on demand would
save it) + the whole stage output (filled patch by patch) + per-patch tiles of the largest patch
(input, output, held residual tile, dwconv scratch; at a format boundary the input tile in both
formats), each in its row's format (the image in the first row's, the stage output in the last
row's). Extra MACs are the overlapping halos recomputed; latency scales each patched row's work by
its patched/full output pixels, converts each patch's input tile at a boundary, and pays the
per-layer overhead once per patch. Only conv rows patch: the prefix stops at the first row of
another kind, so transformer rows (``embed`` block, tokens) never run patch-based.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from hw_profiles.analytic import (BIAS_BYTES, SCALE_BYTES,  # noqa: F401 (the constants: re-exported)
                                  attention_held_elements, conv_weight_bytes, layer_macs, layer_weight_bytes,
                                  matmul_operand_elements)
from hw_profiles.cost_model import CostModel
from hw_profiles.metric import Metric, layers_precision
from hw_profiles.profile import MCU_OP_KINDS, MCU_RATE_KINDS, McuSpec, Profile
from search_spaces import PRECISION_BITS, LayerSpec

KIB = 1024
OP_KINDS = MCU_OP_KINDS
SE_KIND = "linear"  # SE's reduce/expand 1x1 convs act on a 1x1 pooled vector: a matrix-vector product
NATIVE = "int8"  # the format of a row with no precision
ACT_BYTES = {p: -(-bits[1] // 8) for p, bits in PRECISION_BITS.items()}
ACT_BYTES[None] = ACT_BYTES[NATIVE]
"""Activation bytes per element by ``LayerSpec.precision`` (whole bytes: a sub-byte format is held unpacked)."""
PATCH_BLOCKS = ("stem", "block0")
PATCH_PREFIX = "stage1."


def _elements(channels: int, hw: tuple[int, int]) -> int:
    return channels * hw[0] * hw[1]


def conv_flash_bytes(cin: int, cout: int, kernel: int, groups: int, precision: str = NATIVE) -> int:
    """Bytes one conv (or linear) stores at ``precision``; int8: weights, int32 bias and a scale per
    output channel (``BIAS_BYTES + SCALE_BYTES``); fp32: 4-byte weights and bias."""
    return conv_weight_bytes(cin, cout, kernel, groups, precision)


def layer_flash_bytes(layer: LayerSpec) -> int:
    """Flash of one row at its precision (unset: int8): the op's conv plus SE's reduce and expand
    convs (``gap`` stores nothing)."""
    return layer_weight_bytes(layer, unset=NATIVE)


def rate_kind(layer: LayerSpec) -> str:
    """The MAC-rate kind of a row (module doc): ``pwconv`` for a ``linear`` over several tokens."""
    if layer.op == "linear" and layer.in_hw != (1, 1):
        return "pwconv"
    return layer.op


def _axis_ranges(layers: Sequence[LayerSpec], axis: int, patches: int) -> list[list[tuple[int, int]]]:
    """Per row (in order), each patch's output range along ``axis``, then the first row's input
    ranges as a last entry; found backwards from an even split of the last row's output."""
    size = layers[-1].out_hw[axis]
    ranges = [(j * size // patches, (j + 1) * size // patches) for j in range(patches)]
    out = [[r for r in ranges if r[1] > r[0]]]
    for layer in reversed(layers):
        pad, limit = layer.kernel // 2, layer.in_hw[axis]
        out.append([(max(0, a * layer.stride - pad), min(limit, (b - 1) * layer.stride - pad + layer.kernel))
                    for a, b in out[-1]])
    out.reverse()  # out[i]: input ranges of row i (= output ranges of row i-1); out[-1]: last output
    return out


class McuCostModel(CostModel):
    """SRAM, flash, latency and feasibility of an int8 (or mixed int8/fp32) network on an MCU profile."""

    kind = "mcu"

    def __init__(self, profile: Profile, *, patch_first_stage: bool = False, patches: int = 4) -> None:
        super().__init__(profile)
        spec: McuSpec = profile.spec
        missing = [k for k in OP_KINDS if spec.macs_per_cycle.get(k, 0) <= 0]
        missing += [k for k in MCU_RATE_KINDS if k not in OP_KINDS and spec.macs_per_cycle.get(k, 1) <= 0]
        if missing:
            raise ValueError(f"{profile.ref}: macs_per_cycle needs a positive rate for {missing}, "
                             f"got {dict(spec.macs_per_cycle)}")
        floats = dict(spec.float_macs_per_cycle or {})
        bad = sorted(k for k, v in floats.items() if k not in MCU_RATE_KINDS or not 0 < v < float("inf"))
        if bad:
            raise ValueError(f"{profile.ref}: float_macs_per_cycle needs a finite rate > 0 per op kind of "
                             f"{list(MCU_RATE_KINDS)} (or none: half the int8 rate), got {floats}")
        if not isinstance(patch_first_stage, bool):
            raise ValueError(f"patch_first_stage must be a bool, got {patch_first_stage!r}")
        if not isinstance(patches, int) or isinstance(patches, bool) or patches < 1:
            raise ValueError(f"patches must be a positive int, got {patches!r}")
        self.spec = spec
        self.patch_first_stage = patch_first_stage
        self.patches = patches
        self._row = lru_cache(maxsize=65536)(self._row_costs)
        self._patch = lru_cache(maxsize=4096)(self._patch_costs)

    # ------------------------------------------------------------ per row (cached)
    def _row_costs(self, layer: LayerSpec) -> tuple:
        """(input bytes, output bytes, dwconv scratch bytes, SE extra bytes, flash bytes, work
        cycles, overhead cycles, MACs, activation bytes per element, input elements) of one row,
        in its own format."""
        spec = self.spec
        size = ACT_BYTES[layer.precision]
        n_in, n_out = _elements(layer.in_channels, layer.in_hw), _elements(layer.out_channels, layer.out_hw)
        macs = layer_macs(layer)
        se_macs = 2 * layer.out_channels * layer.se_channels
        scratch = 0
        if layer.op == "dwconv":
            pad = layer.kernel // 2
            scratch = (layer.in_hw[0] + 2 * pad) * (layer.in_hw[1] + 2 * pad)
        elementwise = n_in if layer.op == "gap" else 0
        elementwise += n_out * (int(layer.residual) + int(layer.act == "hswish") + 2 * int(layer.se)
                                + int(layer.op == "tokens"))
        work = elementwise * spec.elementwise_cycles_per_element
        if layer.op in ("layernorm", "softmax"):
            work += n_in * spec.cycles_per_element(layer.op)
        if layer.act == "gelu":
            work += n_out * spec.cycles_per_element("gelu")
        if layer.op in MCU_RATE_KINDS:
            kind = rate_kind(layer)
            if layer.precision == "fp32":
                rate, se_rate = spec.float_rate(kind), spec.float_rate(SE_KIND)
            else:
                rate, se_rate = spec.int8_rate(kind), spec.int8_rate(SE_KIND)
            work += (macs - se_macs) / rate + se_macs / se_rate
        calls = 1 + 4 * int(layer.se) + int(layer.residual) + int(layer.act in ("hswish", "gelu"))
        se_extra = layer.out_channels + layer.se_channels if layer.se else 0
        return (n_in * size, n_out * size, scratch * size, se_extra * size, layer_flash_bytes(layer), work,
                calls * spec.per_layer_overhead_cycles, macs, size, n_in)

    # ------------------------------------------------------------ patch stage (cached)
    def _patch_costs(self, layers: tuple[LayerSpec, ...]) -> tuple[int, float, int]:
        """(peak live bytes, cycles, extra MACs) of running ``layers`` patch by patch."""
        rows_h, rows_w = (_axis_ranges(layers, axis, self.patches) for axis in (0, 1))
        last = len(layers) - 1
        sizes = [ACT_BYTES[layer.precision] for layer in layers]
        image = _elements(layers[0].in_channels, layers[0].in_hw) * sizes[0]
        stage_out = _elements(layers[-1].out_channels, layers[-1].out_hw) * sizes[-1]
        tiles_in = [max(b - a for a, b in rows_h[i]) * max(b - a for a, b in rows_w[i]) for i in range(len(layers))]
        tiles_out = tiles_in[1:] + [max(b - a for a, b in rows_h[-1]) * max(b - a for a, b in rows_w[-1])]
        held = _held(layers)
        peak, cycles, extra = 0, 0.0, 0
        n_patches = len(rows_h[-1]) * len(rows_w[-1])
        for i, layer in enumerate(layers):
            size = sizes[i]
            t_in = layer.in_channels * tiles_in[i] * size if i > 0 else 0  # row 0 reads the resident image
            t_out = layer.out_channels * tiles_out[i] * size if i < last else 0  # last writes the stage buffer
            first = held[i]
            t_held = layers[first].in_channels * tiles_in[first] * sizes[first] if first not in (-1, i, 0) else 0
            if layer.op == "dwconv" and held[i] != i:  # in place unless its input is a held block input
                pad = layer.kernel // 2
                h = max(b - a for a, b in rows_h[i]) + 2 * pad
                w = max(b - a for a, b in rows_w[i]) + 2 * pad
                live = max(t_in, t_out) + h * w * size
            else:
                live = t_in + t_out
            if i > 0 and sizes[i - 1] != size:  # format boundary: the tile in both formats while converted
                live = max(live, layer.in_channels * tiles_in[i] * (sizes[i - 1] + size))
                converted = layer.in_channels * sum(b - a for a, b in rows_h[i]) * sum(b - a for a, b in rows_w[i])
                cycles += converted * self.spec.elementwise_cycles_per_element \
                    + n_patches * self.spec.per_layer_overhead_cycles
            peak = max(peak, image + stage_out + live + t_held)
            work, overhead, macs = self._row(layer)[5:8]
            done = sum(b - a for a, b in rows_h[i + 1]) * sum(b - a for a, b in rows_w[i + 1])
            ratio = done / (layer.out_hw[0] * layer.out_hw[1])
            cycles += work * ratio + overhead * n_patches
            extra += round(macs * (ratio - 1))
        return peak, cycles, extra

    # ------------------------------------------------------------ whole network
    def _patch_length(self, layers: Sequence[LayerSpec]) -> int:
        """Rows that run patch-based: the stem/block0/stage1 prefix, cut before a block with SE."""
        if not self.patch_first_stage:
            return 0
        n = 0
        while n < len(layers) and not layers[n].se and layers[n].op in ("conv", "pwconv", "dwconv") and (
                layers[n].block in PATCH_BLOCKS or layers[n].block.startswith(PATCH_PREFIX)):
            n += 1
        while 0 < n < len(layers) and layers[n].block == layers[n - 1].block:
            n -= 1  # never split a block
        return n

    def metrics(self, layers: Sequence[LayerSpec]) -> dict[str, Metric]:
        spec = self.spec
        layers = list(layers)
        rows = [self._row(layer) for layer in layers]
        held = _held(layers)
        kv, operands = _attention_bytes(layers)
        start = self._patch_length(layers)
        peak, cycles, extra = self._patch(tuple(layers[:start])) if start else (0, 0.0, 0)
        flash = spec.runtime_flash_bytes + sum(r[4] for r in rows)
        for i in range(start, len(layers)):
            layer = layers[i]
            n_in, n_out, scratch, se_extra, _, work, overhead, _, size, elements = rows[i]
            cycles += work + overhead
            keep_input = layer.op != "dwconv" or held[i] == i  # dwconv runs in place unless its input is held
            live = n_in + n_out if keep_input else max(n_in, n_out) + scratch
            if se_extra:
                live = max(live, (n_in if keep_input else 0) + n_out + se_extra)
            first = held[i]
            kept = rows[first][0] if first not in (-1, i) else 0
            if i > 0 and rows[i - 1][8] != size:  # format boundary: convert the input first (module doc)
                live = max(live, elements * rows[i - 1][8] + n_in)
                cycles += elements * spec.elementwise_cycles_per_element + spec.per_layer_overhead_cycles
            operand, operand_size = operands[i]
            if operand and operand_size != size:  # k (QKᵀ) or v (AV) written in another format
                cycles += operand * spec.elementwise_cycles_per_element + spec.per_layer_overhead_cycles
            peak = max(peak, live + kept + kv[i])
        sram = peak + spec.runtime_sram_bytes
        total_macs = sum(r[7] for r in rows)
        sram_over = max(0, sram - spec.sram_bytes)
        flash_over = max(0, flash - spec.flash_bytes)
        precision = layers_precision(layers, unset=NATIVE)

        def estimate(value: float, unit: str) -> Metric:
            return self._estimate(value, unit, precision)

        return {
            "peak_sram_kb": estimate(sram / KIB, "KiB"),
            "flash_kb": estimate(flash / KIB, "KiB"),
            "latency_ms": estimate(cycles / spec.clock_hz * 1e3, "ms"),
            "feasible": estimate(float(sram_over == 0 and flash_over == 0), "bool"),
            "sram_over_kb": estimate(sram_over / KIB, "KiB"),
            "flash_over_kb": estimate(flash_over / KIB, "KiB"),
            "patch_recompute_overhead": estimate(extra / total_macs if total_macs else 0.0, "fraction"),
        }


def _attention_bytes(layers: Sequence[LayerSpec]) -> tuple[list[int], list[tuple[int, int]]]:
    """Per row, the bytes of an attention's k/v held beside it (``attention_held_elements``), in the
    format of the q/k/v projection (the last ``linear`` before it) that wrote them; and per row,
    ``(elements, bytes per element of its producer)`` of an attention matmul's second operand (k
    for QKᵀ, v for AV; ``analytic.matmul_operand_elements``), ``(0, 0)`` elsewhere."""
    kv, operands, size = [], [], ACT_BYTES[None]
    for layer, elements in zip(layers, attention_held_elements(layers)):
        if layer.op == "linear":
            size = ACT_BYTES[layer.precision]
        kv.append(elements * size)
        operands.append((matmul_operand_elements(layer), size) if elements and layer.op == "matmul" else (0, 0))
    return kv, operands


def _held(layers: Sequence[LayerSpec]) -> list[int]:
    """Per row, the index of the first row of its residual block (whose input is held while the
    row runs), or -1 where no residual input is held. Blocks are runs of rows with one ``block``."""
    held = [-1] * len(layers)
    start = 0
    for i, layer in enumerate(layers):
        if i > 0 and layer.block != layers[i - 1].block:
            start = i
        if layer.residual:
            held[start:i + 1] = [start] * (i + 1 - start)
    return held


"""Microcontroller cost model: int8 inference with TinyEngine/CMSIS-NN-like kernels.

Metrics (all ``estimated``, tagged with the profile's ``name@version``); memory is in KiB
(1 KiB = 1024 bytes), latency in milliseconds:

- ``peak_sram_kb``: the largest live set over the op sequence, plus ``runtime_sram_bytes``
  (stack, im2col buffers, runtime state). Activations are int8 (1 byte per element). While an
  op runs, its input and output are live, and so is a residual block's input, held from the
  block's first op through its last (unless it *is* the op's input). Depthwise convs run in place
  (TinyEngine): max(in, out) plus one padded input channel of scratch, unless their input is a
  residual block input that must survive. SE needs its pooled vector and hidden vector (C + m
  bytes) beside the dwconv output. ``gap``'s output is C bytes.
- ``flash_kb``: per conv/linear (and SE conv) int8 weights, an int32 bias (BN folded) and a
  4-byte requantisation scale per output channel, plus ``runtime_flash_bytes``.
- ``latency_ms``: per op MACs / ``macs_per_cycle[op]`` (SE's two 1x1 convs at 1x1 are
  matrix-vector products: ``linear`` rate), plus ``per_layer_overhead_cycles`` per kernel call
  (the op; SE's pool, reduce, expand and scale; a residual add; an h-swish), plus
  ``elementwise_cycles_per_element`` per element of gap input, residual add, h-swish output and
  SE (squeeze and scale: 2 per output element), over ``clock_hz``. ReLU is fused into the
  requantising clamp (free).
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
(input, output, held residual tile, dwconv scratch). Extra MACs are the overlapping halos
recomputed; latency scales each patched row's work by its patched/full output pixels and pays
the per-layer overhead once per patch.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from hw_profiles.analytic import layer_macs
from hw_profiles.cost_model import CostModel
from hw_profiles.metric import Metric
from hw_profiles.profile import McuSpec, Profile
from search_spaces import LayerSpec

KIB = 1024
OP_KINDS = ("conv", "pwconv", "dwconv", "linear")
SE_KIND = "linear"  # SE's reduce/expand 1x1 convs act on a 1x1 pooled vector: a matrix-vector product
BIAS_BYTES = 4  # int32 bias per output channel (BN folded in)
SCALE_BYTES = 4  # per-channel requantisation scale
PATCH_BLOCKS = ("stem", "block0")
PATCH_PREFIX = "stage1."


def _elements(channels: int, hw: tuple[int, int]) -> int:
    return channels * hw[0] * hw[1]


def conv_flash_bytes(cin: int, cout: int, kernel: int, groups: int) -> int:
    """Bytes one int8 conv (or linear) stores: weights, int32 bias and a scale per output channel."""
    return cin // groups * kernel * kernel * cout + cout * (BIAS_BYTES + SCALE_BYTES)


def layer_flash_bytes(layer: LayerSpec) -> int:
    """Flash of one row: the op's conv plus SE's reduce and expand convs (``gap`` stores nothing)."""
    if layer.op == "gap":
        return 0
    total = conv_flash_bytes(layer.in_channels, layer.out_channels, layer.kernel, layer.groups)
    if layer.se:
        c, m = layer.out_channels, layer.se_channels
        total += conv_flash_bytes(c, m, 1, 1) + conv_flash_bytes(m, c, 1, 1)
    return total


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
    """SRAM, flash, latency and feasibility of an int8 network on an MCU profile."""

    kind = "mcu"

    def __init__(self, profile: Profile, *, patch_first_stage: bool = False, patches: int = 4) -> None:
        super().__init__(profile)
        spec: McuSpec = profile.spec
        missing = [k for k in OP_KINDS if spec.macs_per_cycle.get(k, 0) <= 0]
        if missing:
            raise ValueError(f"{profile.ref}: macs_per_cycle needs a positive rate for {missing}, "
                             f"got {dict(spec.macs_per_cycle)}")
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
        """(input elements, output elements, dwconv scratch, SE extra bytes, flash bytes,
        work cycles, overhead cycles, MACs) of one row."""
        spec = self.spec
        n_in, n_out = _elements(layer.in_channels, layer.in_hw), _elements(layer.out_channels, layer.out_hw)
        macs = layer_macs(layer)
        se_macs = 2 * layer.out_channels * layer.se_channels
        scratch = 0
        if layer.op == "dwconv":
            pad = layer.kernel // 2
            scratch = (layer.in_hw[0] + 2 * pad) * (layer.in_hw[1] + 2 * pad)
        elementwise = n_in if layer.op == "gap" else 0
        elementwise += n_out * (int(layer.residual) + int(layer.act == "hswish") + 2 * int(layer.se))
        work = elementwise * spec.elementwise_cycles_per_element
        if layer.op != "gap":
            work += (macs - se_macs) / spec.macs_per_cycle[layer.op] + se_macs / spec.macs_per_cycle[SE_KIND]
        calls = 1 + 4 * int(layer.se) + int(layer.residual) + int(layer.act == "hswish")
        se_extra = layer.out_channels + layer.se_channels if layer.se else 0
        return (n_in, n_out, scratch, se_extra, layer_flash_bytes(layer), work,
                calls * spec.per_layer_overhead_cycles, macs)

    # ------------------------------------------------------------ patch stage (cached)
    def _patch_costs(self, layers: tuple[LayerSpec, ...]) -> tuple[int, float, int]:
        """(peak live bytes, cycles, extra MACs) of running ``layers`` patch by patch."""
        rows_h, rows_w = (_axis_ranges(layers, axis, self.patches) for axis in (0, 1))
        last = len(layers) - 1
        image = _elements(layers[0].in_channels, layers[0].in_hw)
        stage_out = _elements(layers[-1].out_channels, layers[-1].out_hw)
        tiles_in = [max(b - a for a, b in rows_h[i]) * max(b - a for a, b in rows_w[i]) for i in range(len(layers))]
        tiles_out = tiles_in[1:] + [max(b - a for a, b in rows_h[-1]) * max(b - a for a, b in rows_w[-1])]
        held = _held(layers)
        peak, cycles, extra = 0, 0.0, 0
        n_patches = len(rows_h[-1]) * len(rows_w[-1])
        for i, layer in enumerate(layers):
            t_in = layer.in_channels * tiles_in[i] if i > 0 else 0  # row 0 reads the resident image
            t_out = layer.out_channels * tiles_out[i] if i < last else 0  # last writes the stage buffer
            first = held[i]
            t_held = layers[first].in_channels * tiles_in[first] if first not in (-1, i, 0) else 0
            if layer.op == "dwconv" and held[i] != i:  # in place unless its input is a held block input
                pad = layer.kernel // 2
                h = max(b - a for a, b in rows_h[i]) + 2 * pad
                w = max(b - a for a, b in rows_w[i]) + 2 * pad
                live = max(t_in, t_out) + h * w
            else:
                live = t_in + t_out
            peak = max(peak, image + stage_out + live + t_held)
            work, overhead, macs = self._row(layer)[5:]
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
        start = self._patch_length(layers)
        peak, cycles, extra = self._patch(tuple(layers[:start])) if start else (0, 0.0, 0)
        flash = spec.runtime_flash_bytes + sum(r[4] for r in rows)
        for i in range(start, len(layers)):
            layer = layers[i]
            n_in, n_out, scratch, se_extra, _, work, overhead, _ = rows[i]
            cycles += work + overhead
            keep_input = layer.op != "dwconv" or held[i] == i  # dwconv runs in place unless its input is held
            live = n_in + n_out if keep_input else max(n_in, n_out) + scratch
            if se_extra:
                live = max(live, (n_in if keep_input else 0) + n_out + se_extra)
            first = held[i]
            if first not in (-1, i):
                live += rows[first][0]
            peak = max(peak, live)
        sram = peak + spec.runtime_sram_bytes
        total_macs = sum(r[7] for r in rows)
        sram_over = max(0, sram - spec.sram_bytes)
        flash_over = max(0, flash - spec.flash_bytes)
        return {
            "peak_sram_kb": self._estimate(sram / KIB, "KiB"),
            "flash_kb": self._estimate(flash / KIB, "KiB"),
            "latency_ms": self._estimate(cycles / spec.clock_hz * 1e3, "ms"),
            "feasible": self._estimate(float(sram_over == 0 and flash_over == 0), "bool"),
            "sram_over_kb": self._estimate(sram_over / KIB, "KiB"),
            "flash_over_kb": self._estimate(flash_over / KIB, "KiB"),
            "patch_recompute_overhead": self._estimate(extra / total_macs if total_macs else 0.0, "fraction"),
        }


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


"""The FPGA template's per-row cost and resource formulas, written once for one template or many.

Every function here takes a :class:`Template` whose fields are Python numbers (one accelerator, as
``hw_profiles.fpga.FpgaCostModel`` uses them) or equal-length numpy arrays (every template of an
accelerator design space at once, as ``hw_profiles.template_table`` uses them), and returns the same
kind. The model itself (what is unrolled, what crosses DDR, the two dataflows) is documented in
``hw_profiles.fpga``; this module is its arithmetic.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hw_profiles.analytic import layer_params, matmul_operand_elements
from search_spaces import PRECISION_BITS, LayerSpec

BRAM18K_BYTES = 18 * 1024 // 8  # 2,304
DATAFLOWS = ("weight_stationary", "output_stationary")
VECTOR_PASSES = {"gap": 1, "tokens": 1, "layernorm": 2, "softmax": 3}
"""Rows that run on the vector unit (no MACs), and its passes over their elements (``hw_profiles.fpga``):
pooling sums once; the token row adds the position embedding once; layer norm takes statistics then
normalises; softmax takes the max, then exp-and-sum, then scales."""


class Template(NamedTuple):
    """An accelerator's knobs in the units the formulas use (scalars or arrays of templates)."""

    pe_rows: object
    pe_cols: object
    bit_width: object
    input_buffer_bytes: object
    weight_buffer_bytes: object
    output_buffer_bytes: object
    per_layer_overhead_cycles: object
    bytes_per_cycle: object  # effective DDR bandwidth / clock
    output_stationary: object  # bool: the dataflow


def template_of(spec, **arrays) -> Template:
    """The ``Template`` of an ``FpgaSpec``; ``arrays`` replace fields by name (spec field names,
    ``dataflow`` as strings and ``clock_hz``/``ddr_bandwidth_bytes_per_s`` too)."""
    get = {name: arrays.get(name, getattr(spec, name)) for name in (
        "pe_rows", "pe_cols", "bit_width", "input_buffer_bytes", "weight_buffer_bytes", "output_buffer_bytes",
        "per_layer_overhead_cycles", "clock_hz", "ddr_bandwidth_bytes_per_s", "dataflow")}
    dataflow = get["dataflow"]
    stationary = (np.asarray(dataflow) == "output_stationary") if not isinstance(dataflow, str) \
        else dataflow == "output_stationary"
    return Template(pe_rows=get["pe_rows"], pe_cols=get["pe_cols"], bit_width=get["bit_width"],
                    input_buffer_bytes=get["input_buffer_bytes"], weight_buffer_bytes=get["weight_buffer_bytes"],
                    output_buffer_bytes=get["output_buffer_bytes"],
                    per_layer_overhead_cycles=get["per_layer_overhead_cycles"],
                    bytes_per_cycle=np.divide(get["ddr_bandwidth_bytes_per_s"], get["clock_hz"]),
                    output_stationary=stationary)


ATTENTION_PATTERN = ("linear", "matmul", "softmax", "matmul")
"""An attention's rows: q/k/v projection, QKᵀ, softmax, AV (``hw_profiles.analytic.attention_held_elements``)."""


class QkvSource(NamedTuple):
    """Where an attention matmul's q/k/v come from: the q/k/v projection (the ``linear`` of the rows
    ``linear`` → ``matmul`` (QKᵀ) → ``softmax`` → ``matmul`` (AV), as
    ``hw_profiles.analytic.attention_held_elements`` reads them), which writes all three as one output.
    They are on chip for QKᵀ and AV exactly when that output stayed on chip (``elements`` at ``bits``
    fit the on-chip buffers, the producer's own rule); otherwise QKᵀ reads q and k from DDR and AV v."""

    elements: int  # 3·w·T: the projection's whole output
    bits: int | None  # the bits it was written in (None: the matmul's own activation bits)
    reads_q: bool  # True: QKᵀ (input q, operand k); False: AV (operand v; its input is the softmax's)


def qkv_source_index(layers, i: int) -> tuple[int, bool] | None:
    """``(index of the q/k/v projection, reads_q)`` when row ``i`` of ``layers`` is an attention's QKᵀ
    (True) or AV (False) matmul in the pattern ``linear → matmul → softmax → matmul``; else None."""
    if layers[i].op != "matmul":
        return None

    def attention_at(start: int) -> bool:
        return 0 <= start and start + 4 <= len(layers) and \
            tuple(layer.op for layer in layers[start:start + 4]) == ATTENTION_PATTERN

    if attention_at(i - 1):
        return i - 1, True
    if attention_at(i - 3):
        return i - 3, False
    return None


def _cdiv(a, b):
    """⌈a / b⌉ for non-negative ints or int arrays."""
    return -(-a // b)


def _pick(output_stationary, os_value, ws_value):
    if isinstance(output_stationary, (bool, np.bool_)):
        return os_value if output_stationary else ws_value
    return np.where(output_stationary, os_value, ws_value)


def array_cycles(layer: LayerSpec, t: Template):
    """Compute cycles of one pass of ``layer`` over the array and the vector unit (module doc of
    ``hw_profiles.fpga``: weight-stationary unrolls output channels × reduction, output-stationary
    output pixels × output channels)."""
    rows, cols = t.pe_rows, t.pe_cols
    oh, ow = layer.out_hw
    pixels = oh * ow
    k2 = layer.kernel * layer.kernel
    if layer.op in VECTOR_PASSES:
        elements = layer.out_elements if layer.op == "tokens" else layer.in_elements
        return VECTOR_PASSES[layer.op] * _cdiv(elements, rows)
    cin_g, cout_g = layer.in_channels // layer.groups, layer.out_channels // layer.groups
    if cin_g == 1 and layer.op != "matmul":  # depthwise
        ws = _cdiv(layer.out_channels, rows) * _cdiv(k2, cols) * pixels
        os = _cdiv(layer.out_channels, cols) * _cdiv(pixels, rows) * k2
    else:
        ws = layer.groups * _cdiv(cout_g, rows) * _cdiv(cin_g * k2, cols) * pixels
        os = layer.groups * _cdiv(cout_g, cols) * _cdiv(pixels, rows) * cin_g * k2
    compute = _pick(t.output_stationary, os, ws)
    if layer.se:
        c, m = layer.out_channels, layer.se_channels
        fc_ws = _cdiv(m, rows) * _cdiv(c, cols) + _cdiv(c, rows) * _cdiv(m, cols)
        fc_os = _cdiv(m, cols) * c + _cdiv(c, cols) * m  # one output pixel: one PE row works
        compute = compute + _pick(t.output_stationary, fc_os, fc_ws) + _cdiv(layer.out_channels * pixels, rows)
    return compute


def row_bits(layer: LayerSpec, t: Template):
    """(weight bits, activation bits): the row's format's, or the template's ``bit_width``."""
    if layer.precision is None:
        return t.bit_width, t.bit_width
    return PRECISION_BITS[layer.precision]


def row_cost(layer: LayerSpec, t: Template, edge: int, in_bits: int | None = None,
             block_input_bits: int | None = None, qkv: QkvSource | None = None):
    """``(compute cycles, memory cycles, cycles, DRAM bytes, passes)`` of one row in context:
    ``edge`` bit 1: its input is the network input, bit 2: its output is the network output;
    ``in_bits``/``block_input_bits``: the bits its input map / the residual's block input were
    written in (None: the row's own); ``qkv``: an attention matmul's q/k/v projection
    (:class:`QkvSource`; None: not known, each of q, k, v is judged on its own)."""
    w_bits, a_bits = row_bits(layer, t)
    passes = _cdiv(w_bits, t.bit_width) * _cdiv(a_bits, t.bit_width)
    compute = array_cycles(layer, t) * passes
    pixels = layer.out_hw[0] * layer.out_hw[1]
    in_elems = layer.in_channels * layer.in_hw[0] * layer.in_hw[1]
    out_elems = layer.out_channels * pixels
    se_weights = 2 * layer.out_channels * layer.se_channels if layer.se else 0
    on_chip = np.minimum(t.input_buffer_bytes, t.output_buffer_bytes)
    in_bytes = in_elems * ((a_bits if in_bits is None else in_bits) / 8)
    out_bytes, w_bytes = out_elems * (a_bits / 8), layer.weights * (w_bits / 8)
    # an attention matmul's stationary operand (k or v): an activation, off chip only when it does not fit
    operand = matmul_operand_elements(layer) * (a_bits / 8)
    stationary = w_bytes + operand
    refetch = np.where((in_bytes > t.input_buffer_bytes) & (stationary > t.weight_buffer_bytes),
                       np.ceil(stationary / t.weight_buffer_bytes), 1)
    params = layer_params(layer) * (w_bits / 8) if layer.op in ("layernorm", "tokens") else 0
    in_dram = in_bytes > on_chip
    if qkv is None:
        operand_dram = np.where(operand > on_chip, operand, 0.0)
    else:  # q/k/v are in DDR exactly when their producer wrote its whole output there
        qkv_bits = a_bits if qkv.bits is None else qkv.bits
        spilled = qkv.elements * (qkv_bits / 8) > on_chip
        operand_dram = np.where(spilled, matmul_operand_elements(layer) * (qkv_bits / 8), 0.0)
        if qkv.reads_q:
            in_dram = spilled
    dram = w_bytes + se_weights * (w_bits / 8) + params + operand_dram
    dram = dram + np.where(bool(edge & 1) | in_dram, in_bytes * refetch, 0.0)
    out_on_chip = out_bytes <= on_chip
    dram = dram + np.where(bool(edge & 2) | np.logical_not(out_on_chip), out_bytes, 0.0)
    if layer.residual:
        if block_input_bits is None:
            dram = dram + out_bytes * np.where(out_on_chip, 2, 1)
        else:
            block_input = out_elems * (block_input_bits / 8)
            dram = dram + block_input * np.where(block_input <= on_chip, 2, 1)
    memory = dram / t.bytes_per_cycle
    return compute, memory, np.maximum(compute, memory) + t.per_layer_overhead_cycles, dram, passes


def dsp_count(pe_rows, pe_cols, bit_width, macs_per_dsp):
    """DSP48E2 slices of the array: ``macs_per_dsp`` MACs share one at ≤ 8 bits (int8 packing);
    wider operands take ⌈b/27⌉·⌈b/18⌉ slices per MAC (its 27×18 multiplier: one at 16 bits, four
    at 32)."""
    pes = pe_rows * pe_cols
    wide = pes * _cdiv(bit_width, 27) * _cdiv(bit_width, 18)
    return np.where(np.asarray(bit_width) <= 8, _cdiv(pes, macs_per_dsp), wide)


def bram_count(input_buffer_bytes, weight_buffer_bytes, output_buffer_bytes):
    """BRAM18K blocks of the three buffers, each rounded up to 2,304-byte blocks."""
    return sum(_cdiv(np.asarray(b), BRAM18K_BYTES) for b in (input_buffer_bytes, weight_buffer_bytes,
                                                               output_buffer_bytes))

"""ZigZag (KU Leuven's ``zigzag-dse``) as an established external engine that cross-checks
:class:`hw_profiles.fpga.FpgaCostModel` on the same accelerator template (``FpgaSpec``).

The only module that imports ``zigzag``; it does so lazily, inside functions, so ``import hw_profiles``
stays fast and works without it. Written against **zigzag-dse 3.9.1** (it also needs ``six``, which
it does not declare). It runs the stages that ``zigzag.api.get_hardware_performance_zigzag`` chains
(``WorkloadParserStage → AcceleratorParserStage → SumStage → WorkloadStage → MinimalLatencyStage →
SpatialMappingGeneratorStage → MinimalLatencyStage → TemporalMappingGeneratorStage (LOMA) →
CostModelStage``) through ``zigzag.stages.main.MainStage``, minus the api's save and visualization
stages (json, pickle and a matplotlib png per run). The workload goes in as ZigZag's python form of
its yaml workload (a list of layer dicts built from our ``LayerSpec`` rows: no torch, no ONNX
export); the accelerator and the mapping as yaml files in a ``tempfile.TemporaryDirectory``, never
in the repository.

**Accelerator** (from the ``FpgaSpec``): an operational array of ``pe_rows`` (D1) × ``pe_cols`` (D2)
MACs at ``energy_pj_per_mac`` each; memories, lowest first: registers, the three on-chip buffers
(``input_buffer_bytes`` → I1, ``weight_buffer_bytes`` → I2, ``output_buffer_bytes`` → O, each serving
the whole array), and DRAM (all operands) with one read-write port of
``ddr_bandwidth_bytes_per_s / clock_hz`` bytes per cycle (rounded to whole bits) at
``energy_pj_per_dram_byte`` per byte. On-chip ports are wide enough to feed every PE each cycle and
on-chip accesses cost no energy (``energy_pj_per_mac`` includes operand reads, as in our model), so
only compute, DRAM and ZigZag's own loop-nest/stall analysis separate the two models.

- ``weight_stationary`` (default): a 2-weight (shadow + active) register per PE, one accumulator
  register per row (rows reduce over the columns). Spatial unrolling: K (output channels) on rows ×
  C (input channels) on columns; where C leaves columns idle, the kernel taps FX/FY join C on the
  columns (our model's im2col reduction). Depthwise: channels (G) on rows × taps on columns.
- ``output_stationary`` (``getattr(spec, "dataflow", ...)``): one accumulator per PE; output pixels
  (OX×OY, or the flattened pixels of a 1×1 conv) on rows × output channels (K, or G for
  depthwise) on columns; the reduction runs in time.

Unroll factors per layer are chosen here (fewest array passes, then the fewest PEs), written as one
ZigZag mapping entry per layer; LOMA then searches the temporal loop order with ``lpf_limit`` 1
(each loop kept whole: the cheapest search it offers, n! orders for n temporal loops) and
``MinimalLatencyStage`` keeps the fastest. Measured on tiny_mbv3 subnets (16×16 array, 2 shared
cores): lpf 1 took 1.3–2.0 s per network, lpf 4 2.7 s, lpf 6 (ZigZag's default) 14–18 s and lpf 8
38–57 s, for latencies within 0.1 % of each other. Results are deterministic (checked across hash
seeds).

**Workload** (per ``LayerSpec`` row): ``conv``/``dwconv`` → ZigZag ``Conv`` (B, G, K, C, OY, OX, FY,
FX with stride relations and "same" padding); ``pwconv`` with stride 1 and ``linear`` → ``Gemm``
``O[d][k] += I[d][c]·W[c][k]`` over the D = H·W pixels (a 1×1 conv is exactly that GEMM; it keeps
LOMA at 3 loops); a strided ``pwconv`` stays a ``Conv``; ``gap`` → ``Pooling`` over the map (G on
rows). SE maps its two FCs as two ``Gemm`` rows (D = 1). Operand bits: the row's format
(``PRECISION_BITS``) or the template's ``bit_width``; partial sums 32 bits. Transformer rows: a
per-token ``linear`` is the ``Gemm`` above over its T tokens (D = T); ``patch_embed`` a ``Conv`` with
stride = kernel and no padding; an attention ``matmul`` is ``heads`` equal ``Gemm`` layers (D = T,
QKᵀ: C = head dim, K = T; AV: C = T, K = head dim) whose W operand is the second activation (k or
v) at the activation bits (ZigZag runs each layer DRAM to DRAM, so an activation operand costs what
a weight would).

**ZigZag does not see**: ``layernorm``, ``softmax`` and the token row (no MACs: they map to no
ZigZag layer, as a clear fall-back; our model runs them on its vector unit), the SE channel-scale pass (cycles on our vector unit; there is no vector
unit here), the residual adds (DDR reads of the block input in our model), BN and activations, our
per-layer overhead, the multi-pass cost of rows wider than ``bit_width`` (ZigZag's MAC has one
precision; wider rows only move more bits), and the on-chip chaining of maps: ZigZag runs each
layer from DRAM to DRAM (its layer-by-layer mode), where our model keeps maps that fit on chip.
Because each layer is evaluated on its own, equal layers run once and count as often as they occur,
and results are cached per (layer, template): exact, not an approximation. A failure inside ZigZag
(e.g. a template whose buffers cannot hold one tile) raises :class:`ZigZagRunError`.

Energy is ZigZag's (MAC + memory access energy) plus ``static_power_w`` × ZigZag's latency, as in
``FpgaCostModel``. Metrics are ``estimated`` with ``profile = "zigzag-dse@<version>:<profile ref>"``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import logging
import math
import os
import tempfile
from collections import Counter
from typing import NamedTuple, Sequence

from hw_profiles.metric import Metric, layers_precision
from hw_profiles.profile import FpgaSpec
from search_spaces import PRECISION_BITS, LayerSpec, NASError

ZIGZAG_ENGINE = "zigzag-dse"
LPF_LIMIT = 1
"""LOMA's loop-prime-factor limit; ZigZag raises it to the number of temporal loops (cheapest search)."""
PSUM_BITS = 32
_INSTALL = "pip install 'zigzag-dse==3.9.1' six"
_CACHE_LIMIT = 100_000
_cache: dict[tuple, tuple[float, float]] = {}


class ZigZagUnavailableError(NASError, RuntimeError):
    """zigzag-dse (or a dependency it needs) is not installed."""


class ZigZagRunError(NASError, RuntimeError):
    """ZigZag failed on a workload/template (e.g. no loop order fits the memories); chained to its error."""


def zigzag_version() -> str:
    """The installed zigzag-dse version, or :class:`ZigZagUnavailableError`."""
    try:
        return importlib.metadata.version(ZIGZAG_ENGINE)
    except importlib.metadata.PackageNotFoundError:
        raise ZigZagUnavailableError(f"{ZIGZAG_ENGINE} is not installed; install it with: {_INSTALL}") from None


def _import_zigzag() -> tuple:
    """``(yaml, MainStage, TemporalMappingType, stages)``: what a run needs, imported here (lazily);
    ``stages`` are ZigZag's stage classes in pipeline order. Raises ZigZagUnavailableError."""
    try:
        import yaml  # a zigzag dependency
        from zigzag.mapping.temporal_mapping import TemporalMappingType
        from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
        from zigzag.stages.main import MainStage
        from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
        from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
        from zigzag.stages.parser.accelerator_parser import AcceleratorParserStage
        from zigzag.stages.parser.workload_parser import WorkloadParserStage
        from zigzag.stages.results.reduce_stages import MinimalLatencyStage, SumStage
        from zigzag.stages.workload_iterator import WorkloadStage
    except ImportError as err:
        raise ZigZagUnavailableError(f"{ZIGZAG_ENGINE} cannot be imported (missing {err.name or err}); "
                                     f"install it with: {_INSTALL}") from None
    stages = [WorkloadParserStage, AcceleratorParserStage, SumStage, WorkloadStage, MinimalLatencyStage,
              SpatialMappingGeneratorStage, MinimalLatencyStage, TemporalMappingGeneratorStage, CostModelStage]
    return yaml, MainStage, TemporalMappingType, stages


def dataflow_of(spec: FpgaSpec) -> str:
    """The template's dataflow (``weight_stationary`` where the spec has no such field)."""
    dataflow = getattr(spec, "dataflow", "weight_stationary")
    if dataflow not in ("weight_stationary", "output_stationary"):
        raise ValueError(f"FpgaSpec.dataflow must be weight_stationary or output_stationary, got {dataflow!r}")
    return dataflow


# ---------------------------------------------------------------------------------------- workload
class ZigZagOp(NamedTuple):
    """One ZigZag layer: its operator, loop sizes, stride/padding (Conv only) and operand bits."""

    operator: str  # Conv | Gemm | Pooling
    sizes: tuple[tuple[str, int], ...]  # (loop dim, size), size-1 dims kept
    stride: int
    pad: int
    in_hw: tuple[int, int]
    w_bits: int
    a_bits: int


def zigzag_ops(layer: LayerSpec, bit_width: int) -> list[ZigZagOp]:
    """The ZigZag layers of one row (module doc: what maps, what ZigZag does not see)."""
    w_bits, a_bits = PRECISION_BITS[layer.precision] if layer.precision else (bit_width, bit_width)
    (oh, ow), (ih, iw) = layer.out_hw, layer.in_hw

    def gemm(d: int, k: int, c: int) -> ZigZagOp:
        return ZigZagOp("Gemm", (("D", d), ("K", k), ("C", c)), 1, 0, (1, 1), w_bits, a_bits)

    if layer.op == "gap":
        ops = [ZigZagOp("Pooling", (("B", 1), ("G", layer.in_channels), ("OY", 1), ("OX", 1), ("FY", ih), ("FX", iw)),
                        1, 0, (ih, iw), 0, a_bits)]
    elif layer.op in ("layernorm", "softmax", "tokens"):
        ops = []  # element-wise: not seen by ZigZag (module doc)
    elif layer.op == "matmul":  # heads equal GEMMs; W is the second activation
        g = layer.groups
        ops = [gemm(oh * ow, layer.out_channels // g, layer.in_channels // g)._replace(w_bits=a_bits)] * g
    elif layer.op == "linear" or (layer.op == "pwconv" and layer.stride == 1 and layer.groups == 1):
        ops = [gemm(oh * ow, layer.out_channels, layer.in_channels)]
    else:
        g = layer.groups
        pad = 0 if layer.op == "patch_embed" else layer.kernel // 2
        ops = [ZigZagOp("Conv", (("B", 1), ("G", g), ("K", layer.out_channels // g), ("C", layer.in_channels // g),
                                 ("OY", oh), ("OX", ow), ("FY", layer.kernel), ("FX", layer.kernel)),
                        layer.stride, pad, (ih, iw), w_bits, a_bits)]
    if layer.se:
        ops += [gemm(1, layer.se_channels, layer.out_channels), gemm(1, layer.out_channels, layer.se_channels)]
    return ops


def _layer_dict(op: ZigZagOp, index: int) -> dict:
    """ZigZag's workload entry (its yaml layer format, as python) for ``op``, layer id ``index``."""
    precision = {"W": op.w_bits, "I": op.a_bits, "O": PSUM_BITS, "O_final": op.a_bits}
    source = {"I": max(index - 1, 0), "W": index}
    dims, sizes = [d for d, _ in op.sizes], [s for _, s in op.sizes]
    row = {"id": index, "name": f"L{index}", "operator_type": op.operator, "loop_dims": dims, "loop_sizes": sizes,
           "operand_precision": precision, "operand_source": source}
    if op.operator == "Gemm":
        row["equation"] = "O[d][k]+=I[d][c]*W[c][k]"
    elif op.operator == "Pooling":
        row["equation"] = "O[b][g][oy][ox]+=W[fx][fy]*I[b][g][iy][ix]"
        row["dimension_relations"] = ["ix=1*ox+1*fx", "iy=1*oy+1*fy"]
    else:
        row["equation"] = "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]"
        row["dimension_relations"] = [f"ix={op.stride}*ox+1*fx", f"iy={op.stride}*oy+1*fy"]
        row.update(pr_loop_dims=["IX", "IY"], pr_loop_sizes=[op.in_hw[1], op.in_hw[0]],
                   padding=[[op.pad, op.pad], [op.pad, op.pad]])
    return row


# ----------------------------------------------------------------------------------------- mapping
def split_unrolling(dims: Sequence[tuple[str, int]], capacity: int) -> list[tuple[str, int]]:
    """Unroll factors for ``dims`` on one array side of ``capacity`` PEs: the fewest passes
    ∏⌈size/u⌉, then the fewest PEs used, then the first found (deterministic). Factors of 1 dropped."""
    ranges = [range(1, min(size, capacity) + 1) for _, size in dims]
    best = None
    for factors in itertools.product(*ranges):
        if math.prod(factors) > capacity:
            continue
        key = (math.prod(-(-size // u) for (_, size), u in zip(dims, factors)), math.prod(factors))
        if best is None or key < best[0]:
            best = (key, factors)
    return [(name, u) for (name, _), u in zip(dims, best[1]) if u > 1]


def _spatial_dims(op: ZigZagOp, output_stationary: bool) -> tuple[list, list]:
    """The loop dims (with sizes) unrolled over the rows (D1) and the columns (D2)."""
    size = dict(op.sizes)
    depthwise = op.operator == "Conv" and size["C"] == 1 and size["G"] > 1
    if op.operator == "Pooling":
        return [("G", size["G"])], []
    if output_stationary:
        pixels = [("D", size["D"])] if op.operator == "Gemm" else [("OX", size["OX"]), ("OY", size["OY"])]
        return pixels, [("G", size["G"])] if depthwise else [("K", size["K"])]
    if depthwise:
        return [("G", size["G"])], [("FX", size["FX"]), ("FY", size["FY"])]
    reduction = [("C", size["C"])] if op.operator == "Gemm" else [("C", size["C"]), ("FX", size["FX"]), ("FY", size["FY"])]
    return [("K", size["K"])], reduction


def _mapping_entry(op: ZigZagOp, name: str, spec: FpgaSpec, output_stationary: bool) -> dict:
    """A ZigZag mapping entry fixing ``op``'s spatial unrolling on the array."""
    rows, cols = _spatial_dims(op, output_stationary)
    spatial = {}
    for side, dims, capacity in (("D1", rows, spec.pe_rows), ("D2", cols, spec.pe_cols)):
        factors = split_unrolling(dims, capacity) if dims else []
        fallback = dims[0][0] if dims else op.sizes[-1][0]  # a side with nothing unrolled: one PE
        spatial[side] = [f"{dim}, {u}" for dim, u in factors] or [f"{fallback}, 1"]
    return {"name": name, "spatial_mapping": spatial, "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}


# ------------------------------------------------------------------------------------- accelerator
def _memory(size_bits: int, operands: list[str], served: list[str], ports: list[tuple], cost: float = 0.0) -> dict:
    """A ZigZag memory entry; ``ports``: (name, type, bits per cycle, allocations)."""
    return {"size": int(size_bits), "r_cost": float(cost), "w_cost": float(cost), "area": 0.0, "latency": 1,
            "operands": operands, "served_dimensions": served,
            "ports": [{"name": n, "type": t, "bandwidth_min": int(bw), "bandwidth_max": int(bw), "allocation": a}
                      for n, t, bw, a in ports]}


def _register(operand: str, bits: int, served: list[str]) -> dict:
    """A double-buffered register (two words) with separate ports per direction (like ZigZag's TPU example)."""
    if operand == "O":
        ports = [("r_port_1", "read", bits, ["O, tl"]), ("r_port_2", "read", bits, ["O, th"]),
                 ("w_port_1", "write", bits, ["O, fh"]), ("w_port_2", "write", bits, ["O, fl"])]
    else:
        ports = [("r_port_1", "read", bits, [f"{operand}, tl"]), ("w_port_1", "write", bits, [f"{operand}, fh"])]
    return _memory(2 * bits, [operand], served, ports)


def _buffer(size_bytes: int, operand: str, port_bits: int) -> dict:
    reads, writes = (["O, tl", "O, th"], ["O, fh", "O, fl"]) if operand == "O" else ([f"{operand}, tl"], [f"{operand}, fh"])
    return _memory(8 * size_bytes, [operand], ["D1", "D2"],
                   [("r_port_1", "read", port_bits, reads), ("w_port_1", "write", port_bits, writes)])


def dram_bits_per_cycle(spec: FpgaSpec) -> int:
    """ZigZag's DRAM port width: the effective DDR bandwidth per clock, in whole bits (at least 1)."""
    return max(1, round(spec.ddr_bandwidth_bytes_per_s / spec.clock_hz * 8))


def accelerator_description(spec: FpgaSpec, *, operand_bits: int = 8) -> dict:
    """ZigZag's accelerator (its yaml format, as python) for the template (module doc).
    ``operand_bits``: the widest weight/activation of the network (sizes registers and ports)."""
    output_stationary = dataflow_of(spec) == "output_stationary"
    wide = max(operand_bits, PSUM_BITS) * spec.pe_rows * spec.pe_cols  # feeds every PE each cycle
    dram = dram_bits_per_cycle(spec)
    memories = {}
    if output_stationary:
        memories["o_reg"] = _register("O", PSUM_BITS, [])
    else:
        memories["w_reg"] = _register("I2", operand_bits, [])
        memories["o_reg"] = _register("O", PSUM_BITS, ["D2"])
    memories["weight_buffer"] = _buffer(spec.weight_buffer_bytes, "I2", wide)
    memories["input_buffer"] = _buffer(spec.input_buffer_bytes, "I1", wide)
    memories["output_buffer"] = _buffer(spec.output_buffer_bytes, "O", wide)
    alloc = [f"{op}, {d}" for op in ("I1", "I2") for d in ("fh", "tl")] + [f"O, {d}" for d in ("fh", "tl", "fl", "th")]
    memories["dram"] = _memory(2 ** 40, ["I1", "I2", "O"], ["D1", "D2"], [("rw_port_1", "read_write", dram, alloc)],
                               cost=spec.energy_pj_per_dram_byte * dram / 8)
    array = {"unit_energy": float(spec.energy_pj_per_mac), "unit_area": 1.0, "dimensions": ["D1", "D2"],
             "sizes": [spec.pe_rows, spec.pe_cols]}
    return {"name": f"hwnas_{dataflow_of(spec)}", "memories": memories, "operational_array": array}


# -------------------------------------------------------------------------------------------- run
@contextlib.contextmanager
def _quiet_zigzag():
    """ZigZag logs every layer (INFO) and mapping notes (WARNING); keep its loggers to errors while it runs."""
    logger = logging.getLogger("zigzag")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run(ops: Sequence[ZigZagOp], spec: FpgaSpec, operand_bits: int) -> list[tuple[float, float]]:
    """(cycles, energy pJ) of each op, one ZigZag run over all of them."""
    yaml, MainStage, TemporalMappingType, stages = _import_zigzag()
    output_stationary = dataflow_of(spec) == "output_stationary"
    workload = [_layer_dict(op, i) for i, op in enumerate(ops)]
    mapping = [{"name": "default", "spatial_mapping": None, "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]
    mapping += [_mapping_entry(op, f"L{i}", spec, output_stationary) for i, op in enumerate(ops)]
    with tempfile.TemporaryDirectory(prefix="hwnas-zigzag-") as folder, _quiet_zigzag():
        accelerator, mapping_path = os.path.join(folder, "accelerator.yaml"), os.path.join(folder, "mapping.yaml")
        with open(accelerator, "w", encoding="utf-8") as f:
            yaml.safe_dump(accelerator_description(spec, operand_bits=operand_bits), f, sort_keys=False)
        with open(mapping_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(mapping, f, sort_keys=False)
        main = MainStage(stages, accelerator=accelerator, workload=workload, mapping=mapping_path, dump_folder=folder,
                         loma_lpf_limit=LPF_LIMIT, loma_show_progress_bar=False, nb_mappings_generated=1,
                         enable_mix_spatial_mapping_generation=False, access_same_data_considered_as_no_access=True,
                         temporal_mapping_type=TemporalMappingType("uneven"))
        try:
            (_, per_layer), = main.run()
        except Exception as err:  # noqa: BLE001 - any failure inside the external engine
            first = (str(err).strip().splitlines() or [""])[0].strip()
            raise ZigZagRunError(f"ZigZag failed on {len(ops)} layer(s) of a {spec.pe_rows}x{spec.pe_cols} "
                                 f"{dataflow_of(spec)} template: {type(err).__name__}: {first}") from err
    by_name = {cme.layer.name: (float(cme.latency_total2), float(cme.energy_total)) for cme, _ in per_layer}
    return [by_name[f"L{i}"] for i in range(len(ops))]


def zigzag_metrics(layers: Sequence[LayerSpec], spec: FpgaSpec, *, profile_ref: str) -> dict[str, Metric]:
    """ZigZag's ``latency_ms`` and ``energy_mj`` of the network on the template ``spec`` (module doc),
    tagged ``estimated`` with ``zigzag-dse@<version>:<profile_ref>``. Raises ZigZagUnavailableError."""
    version = zigzag_version()
    ops = Counter(op for layer in layers for op in zigzag_ops(layer, spec.bit_width))
    if not ops:
        raise ValueError("zigzag_metrics needs at least one layer")
    bits = max(max(op.w_bits, op.a_bits) for op in ops)
    key = (version, spec, dataflow_of(spec), bits)
    todo = [op for op in ops if (key, op) not in _cache]
    if todo:
        results = _run(todo, spec, bits)
        if len(_cache) + len(todo) > _CACHE_LIMIT:
            _cache.clear()
        _cache.update({(key, op): result for op, result in zip(todo, results)})
    cycles = sum(n * _cache[key, op][0] for op, n in ops.items())
    energy_pj = sum(n * _cache[key, op][1] for op, n in ops.items())
    latency_ms = cycles / spec.clock_hz * 1e3
    energy_mj = energy_pj * 1e-9 + spec.static_power_w * latency_ms
    tag = f"{ZIGZAG_ENGINE}@{version}:{profile_ref}"
    precision = layers_precision(layers, unset="int8" if spec.bit_width == 8 else f"int{spec.bit_width}")
    return {name: Metric(value=float(value), unit=unit, source="estimated", profile=tag, precision=precision)
            for name, value, unit in (("latency_ms", latency_ms, "ms"), ("energy_mj", energy_mj, "mJ"))}


def clear_cache() -> None:
    """Forget the cached per-layer ZigZag results (e.g. to time cold runs)."""
    _cache.clear()

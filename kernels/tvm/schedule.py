"""The simple default CPU schedule for untuned TVM builds (see ``kernels.tvm.build``'s docstring).

``legalize`` lowers Relax ops to fused, unscheduled TIR; ``default_schedule`` then schedules every
PrimFunc: injective producers inlined where legal, the innermost spatial loop vectorised, an
output-channel register tile unrolled next to it for reductions, and the outer spatial loops
fused into parallel chunks. Every step that TVM refuses is skipped, never fatal. Special rules
come first, each on a fresh schedule of the function, and a block keeps the simple rules wherever its
rule does not apply all the way: on a target with AVX-512 VNNI, an int8 pointwise conv (uint8 data,
int8 weights, int32 sums: ``kernels.tvm.int8``'s output) goes to
:func:`kernels.tvm.pointwise.schedule_pointwise`; a depthwise conv (float or integer) with at least
two vector-widths of channels goes to :func:`kernels.tvm.depthwise.schedule_depthwise`; a
matrix-vector product (a pointwise conv on a 1x1 map, a batch-1 dense layer) goes to
:func:`kernels.tvm.gemv.schedule_gemv`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from kernels.errors import KernelError
from kernels.tvm._common import _tvm
from kernels.tvm.special_rules import SHAPE_RULES, apply_special, special_functions, special_rules

# Knobs of the default schedule (module docstring); measured on ofa_mbv3 at 160 px, one thread.
MIN_PARALLEL_WORK = 1 << 18  # loop iterations below which a block stays serial (a launch costs ~10 us)
PARALLEL_CHUNKS = 8  # outer loops are fused for ``parallel`` until they give this many chunks per core
REUSE_TILE = 8  # output-channel register tile of a reduction (8: 4.0 ms in all, 4: 5.0, 16: 5.1)
INLINE_PADDING = False  # inlined padding puts a bounds check on every load: depthwise convs 3-7x slower


def legalize(mod, target):
    """Relax ops lowered to fused TIR PrimFuncs, unscheduled (the passes of the "zero" pipeline)."""
    tvm = _tvm()
    from tvm import relax

    passes = [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
              relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR()]
    try:
        with target:
            return tvm.transform.Sequential(passes)(mod)
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM schedule failed: legalising to TIR: {type(err).__name__}: {err}") from err


def default_schedule(mod, target, *, vnni: bool | None = None, without=()):
    """``legalize(mod)`` with every PrimFunc scheduled by the default CPU rules (module docstring)."""
    return schedule_legalized(legalize(mod, target), target, vnni=vnni, without=without)


def schedule_legalized(mod, target, *, vnni: bool | None = None, without=()):
    """Every PrimFunc of an already legalised ``mod`` scheduled by the simple CPU rules, except those
    marked ``tirx.is_scheduled`` (e.g. applied from a MetaSchedule database), which stay as they are.
    ``vnni``: int8 pointwise convs on AVX-512 VNNI (:mod:`kernels.tvm.pointwise`) when ``target`` has
    it (None or True); False turns the rule off. ``without``: names of :data:`SHAPE_RULES` to leave
    out ("depthwise": depthwise convs in channel blocks, :mod:`kernels.tvm.depthwise`; "gemv":
    matrix-vector products, :mod:`kernels.tvm.gemv`); their blocks then get the simple rules."""
    if isinstance(without, str):
        raise ValueError(f"without: a list of rule names, got the string {without!r}; e.g. without=({without!r},)")
    unknown = sorted(set(without) - set(SHAPE_RULES))
    if unknown:
        raise ValueError(f"without: unknown schedule rule(s) {unknown}; expected names from {list(SHAPE_RULES)}")
    _tvm()
    from tvm import tirx

    from kernels.tvm.pointwise import has_vnni

    lanes = vector_lanes(target)
    cores = int(target.attrs.get("num-cores", 0) or 0) or os.cpu_count() or 1
    rules = special_rules(vnni=has_vnni(target) and vnni is not False,  # never vpdpbusd without VNNI
                          shape_rules=[name for name in SHAPE_RULES if name not in without],
                          min_parallel_work=MIN_PARALLEL_WORK)
    try:
        updated = {}
        for gvar, func in mod.functions_items():
            if isinstance(func, tirx.PrimFunc) and not _is_scheduled(func):
                updated[gvar] = _schedule_func(func, lanes, cores, rules)
        for gvar, func in updated.items():
            mod[gvar] = func
        return mod
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM schedule failed: {type(err).__name__}: {err}") from err


def vector_lanes(target) -> int:
    """float32 (and int32) lanes of the target's widest vector register, at least 4 (4 for a target LLVM
    cannot describe): 16 with AVX-512, 8 with AVX2, 4 with NEON."""
    from tvm.target.codegen import llvm_get_vector_width

    try:
        return max(int(llvm_get_vector_width(target)) // 32, 4)
    except Exception:  # noqa: BLE001
        return 4


def build_scheduled(mod, target, *, vnni: bool | None = None, without=()):
    """``(executable, scheduled module)``: a copy of the legalised ``mod`` scheduled by
    :func:`schedule_legalized` and built. Should that build fail with the special rules in it, the
    copy is scheduled by the simple rules alone and built, and a ``RuntimeWarning`` names the first
    error: a rule that schedules some shape into code TVM cannot lower costs speed, never the build."""
    from kernels.tvm.build import build

    scheduled = schedule_legalized(mod.clone(), target, vnni=vnni, without=without)
    try:
        return build(scheduled, target), scheduled
    except KernelError as err:
        if not special_functions(scheduled):
            raise  # no special rule in it: the simple rules alone fail the same way
        warnings.warn(f"TVM build with the special schedule rules failed, built with the simple rules alone: "
                      f"{str(err).splitlines()[0][:300]}", RuntimeWarning, stacklevel=2)
    scheduled = schedule_legalized(mod.clone(), target, vnni=False, without=SHAPE_RULES)
    return build(scheduled, target), scheduled


def _is_scheduled(func) -> bool:
    attrs = func.attrs or {}
    return any(bool(attrs.get(key, False)) for key in ("tirx.is_scheduled", "tir.is_scheduled"))


def _attempt(step, *args, **kwargs):
    """``step(*args)``'s value, or None when TVM refuses the step (the rule does not apply here)."""
    try:
        return step(*args, **kwargs)
    except Exception:  # noqa: BLE001
        return None


def _ok(step, *args, **kwargs) -> bool:
    """Whether TVM applied ``step(*args)`` (for schedule primitives that return nothing)."""
    try:
        step(*args, **kwargs)
        return True
    except Exception:  # noqa: BLE001
        return False


def _schedule_func(func, lanes: int, cores: int, rules: list):
    """``func`` scheduled by the rules; ``func`` itself when they cannot even start on it."""
    from tvm import s_tir

    try:
        sch = s_tir.Schedule(func, error_render_level="none")  # refusals are expected: skip printing TIR
        root = sch.get_sblock("root")
        _inline_injective(sch, root)
    except Exception:  # noqa: BLE001 - not a block-form PrimFunc: leave it
        return func
    sch, root, done = apply_special(sch, root, lanes, cores, rules)
    for block in list(sch.get_child_blocks(root)):
        name = sch.get(block).name_hint
        if name in done:
            continue
        try:
            done |= _schedule_block(sch, block, lanes, cores)
        except Exception:  # noqa: BLE001 - keep what was applied, skip the rest
            pass
        done.add(name)
    return sch.mod["main"].with_attr("tirx.is_scheduled", True)


def _inline_injective(sch, root) -> None:
    progress = True
    while progress:
        progress = False
        for block in sch.get_child_blocks(root):
            if not _is_spatial(sch, block) or (not INLINE_PADDING and _is_padding(sch, block)):
                continue
            if _ok(sch.compute_inline, block) or _ok(sch.reverse_compute_inline, block):
                progress = True
                break


def _is_padding(sch, block) -> bool:
    """Whether the block's value is conditional (``if_then_else``), as padding is."""
    import tvm

    has_if = tvm.get_global_func("s_tir.schedule.HasIfThenElse", allow_missing=True)
    return bool(has_if(sch.get(block))) if has_if is not None else "if_then_else" in sch.get(block).script()


def _is_spatial(sch, block) -> bool:
    from tvm import tirx

    return all(iv.iter_type == tirx.IterVar.DataPar for iv in sch.get(block).iter_vars)


def _loop_kinds(sch, block):
    """The loops of ``block``, each one's kind ("S" spatial, "R" reduction, None otherwise) and the
    block iter var it binds (None for a unit loop that binds none); kinds is None when the
    bindings are not plain loop variables."""
    from tvm import s_tir, tirx

    loops = sch.get_loops(block)
    if not loops:
        return loops, [], []
    realize = sch.get(loops[-1]).body
    if not isinstance(realize, s_tir.SBlockRealize):
        return loops, None, None
    bound = []
    for iv, value in zip(realize.block.iter_vars, realize.iter_values):
        if isinstance(value, tirx.Var):
            kind = {tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}.get(iv.iter_type)
            bound.append((value, kind, iv.var))
        elif not isinstance(value, tirx.IntImm):
            return loops, None, None
    kinds, ivars = [], []
    for loop in loops:
        var = sch.get(loop).loop_var
        match = [(kind, ivar) for v, kind, ivar in bound if v.same_as(var)]
        kind, ivar = match[0] if match else ("S" if _extent(sch, loop) == 1 else None, None)
        kinds.append(kind)
        ivars.append(ivar)
    return loops, kinds, ivars


def _reuse_loop(sch, block, candidates, vec_var):
    """Among ``candidates`` ((loop, iter var) pairs), the loop of largest extent divisible by
    ``REUSE_TILE`` that some read does not depend on while it depends on ``vec_var``: tiling it
    next to the vector loop reuses each vector load that many times (a conv's output channels)."""
    from tvm.tirx.analysis import undefined_vars

    reads = []
    for region in sch.get(block).reads:
        used = [v for r in region.region for v in undefined_vars(r.min)]
        reads.append(used)
    best = None
    for loop, ivar in candidates:
        extent = _extent(sch, loop)
        if ivar is None or not extent or extent % REUSE_TILE or extent < 2 * REUSE_TILE:
            continue
        reused = any(any(v.same_as(vec_var) for v in used) and not any(v.same_as(ivar) for v in used)
                     for used in reads)
        if reused and (best is None or extent > _extent(sch, best)):
            best = loop
    return best


def _extent(sch, loop):
    from tvm import tirx

    extent = sch.get(loop).extent
    return int(extent.value) if isinstance(extent, tirx.IntImm) else None


def _vector_factor(extent, lanes: int):
    """The vector width for a loop of ``extent``: all of it when it fits in ``lanes``, else the
    largest power-of-two divisor >= 4, else the largest divisor >= 4; None otherwise (LLVM may
    still vectorise such a loop itself). The widest divisor first (10 lanes for a 20-wide row, 14 for
    28, instead of 4) measured 0.94-1.06x of this on whole ofa_mbv3 networks at 160 and 224 px: no gain."""
    if extent is None or extent < 2:
        return None
    if extent <= lanes:
        return extent
    power = next((d for d in (64, 32, 16, 8, 4) if d <= lanes and extent % d == 0), None)
    return power or next((d for d in range(lanes, 3, -1) if extent % d == 0), None)


def _schedule_block(sch, block, lanes: int, cores: int) -> set:
    """Schedule one remaining block; returns the names of the blocks attached under it."""
    loops, kinds, ivars = _loop_kinds(sch, block)
    if not loops or kinds is None or None in kinds:
        return set()
    work = int(np.prod([_extent(sch, loop) or 1 for loop in loops]))
    spatial = [(loop, ivar) for loop, kind, ivar in zip(loops, kinds, ivars) if kind == "S"]
    reduction = [loop for loop, kind in zip(loops, kinds) if kind == "R"]
    vec_at = next((i for i in range(len(spatial) - 1, -1, -1) if (_extent(sch, spatial[i][0]) or 0) > 1), None)
    outer, inner, tile = [loop for loop, _ in spatial], None, None
    if vec_at is not None:
        vec, vec_var = spatial[vec_at]
        factor = _vector_factor(_extent(sch, vec), lanes)
        if factor is not None:
            others = spatial[:vec_at] + spatial[vec_at + 1:]
            reuse = _reuse_loop(sch, block, others, vec_var) if reduction else None
            outer = [loop for loop, _ in others]
            if reuse is not None:
                parts = _attempt(sch.split, reuse, factors=[None, REUSE_TILE])
                if parts is not None:
                    outer[outer.index(reuse)], tile = parts
            if factor < _extent(sch, vec):
                parts = _attempt(sch.split, vec, factors=[None, factor])
                if parts is not None:
                    outer, inner = outer + [parts[0]], parts[1]
            else:
                inner = vec
    if inner is not None and not _ok(sch.reorder, *outer, *reduction, *([tile] if tile else []), inner):
        return set()  # the loops could not be ordered (not one chain): leave the nest
    if inner is not None:
        _ok(sch.vectorize, inner)  # before decompose_reduction: the init loop inherits it
    if tile is not None:
        _ok(sch.unroll, tile)
    attach_at = outer[-1] if outer else None
    if outer and cores > 1 and work >= MIN_PARALLEL_WORK:
        # fuse only as many outer loops as give each thread several chunks: fusing deeper puts
        # div/mod index arithmetic in the hot loop
        count, extent = 0, 1
        while count < len(outer) and extent < PARALLEL_CHUNKS * cores:
            extent *= _extent(sch, outer[count]) or 1
            count += 1
        fused = outer[0] if count == 1 else _attempt(sch.fuse, *outer[:count])
        if fused is not None:
            _ok(sch.parallel, fused)
            if count == len(outer):
                attach_at = fused
        elif count > 1:
            attach_at = None  # the fuse failed half way: do not touch the nest further
    attached = set()
    if reduction and attach_at is not None:  # an epilogue left after inlining: compute it per tile
        for consumer in _attempt(sch.get_consumers, block) or []:
            name = sch.get(consumer).name_hint
            if _is_spatial(sch, consumer) and _ok(sch.reverse_compute_at, consumer, attach_at):
                attached.add(name)
                _vectorize_innermost(sch, consumer, lanes)
    if reduction:
        _attempt(sch.decompose_reduction, block, reduction[0])
    return attached


def _vectorize_innermost(sch, block, lanes: int) -> None:
    loops = _attempt(sch.get_loops, block)
    if not loops:
        return
    loop = loops[-1]
    factor = _vector_factor(_extent(sch, loop), lanes)
    if factor is None:
        return
    if factor < _extent(sch, loop):
        parts = _attempt(sch.split, loop, factors=[None, factor])
        if parts is None:
            return
        loop = parts[1]
    _ok(sch.vectorize, loop)


@dataclass(frozen=True)
class ScheduleSummary:
    """What a schedule did: PrimFuncs in the module, and loops annotated parallel / vectorised."""

    prim_funcs: int
    parallel_loops: int
    vectorized_loops: int


def schedule_summary(mod) -> ScheduleSummary:
    """Count PrimFuncs and their parallel and vectorised loops in ``mod`` (from the TVMScript text:
    0.27 has no Python TIR visitor)."""
    _tvm()
    from tvm import tirx

    funcs = [func for _, func in mod.functions_items() if isinstance(func, tirx.PrimFunc)]
    texts = [func.script() for func in funcs]
    return ScheduleSummary(prim_funcs=len(funcs), parallel_loops=sum(t.count("T.parallel(") for t in texts),
                           vectorized_loops=sum(t.count("T.vectorized(") for t in texts))

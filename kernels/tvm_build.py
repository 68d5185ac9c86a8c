"""TVM build of one ONNX model: import, a simple default schedule, compile, run (Apache TVM 0.27).

Contract: every function imports tvm lazily (``import kernels`` stays light) and every failure is a
:class:`KernelError` naming the step: import, schedule, build or run. Without TVM each raises
:data:`TVM_MISSING`. The path is ``host_target(threads)`` → ``import_onnx(path)`` (static shape) →
``default_schedule(mod, target)`` → ``build(mod, target)`` → ``TvmModel(executable, threads=)``;
:func:`compile_onnx` chains them. :func:`legalize` alone (no schedule) is the untuned "zero"-like
build that DESIGN.md measured, kept for comparison. :func:`export_library` writes a built
executable as a shared library (atomic) and :func:`load_library` reloads it for ``TvmModel``.

``default_schedule`` legalises Relax ops to TIR and fuses them (as the "zero" pipeline does), then
schedules every PrimFunc with a few fixed rules (no tuning, no search):
1. Inline injective blocks (bias, activations, casts) into their consumers or producers where
   TVM allows it. Padding (an ``if_then_else`` block) stays a block of its own: inlined, it puts a
   bounds check on every load of the conv (``INLINE_PADDING``).
2. For each remaining block, take its innermost spatial loop of extent > 1 as the vector loop,
   split to at most the target's float32 lanes (all of it when it fits, else a divisor >= 4,
   powers of two first) and order the loops [outer spatial] + [reduction] + [tile] + [vector].
   ``tile`` is a reduction's output-channel loop split by ``REUSE_TILE`` and unrolled: one that a
   vector load does not depend on, so each load of the input is reused that many times.
3. Fuse the leading outer spatial loops until they give ``PARALLEL_CHUNKS`` chunks per core and
   mark them ``parallel`` (not when the target has one core or the block runs fewer than
   ``MIN_PARALLEL_WORK`` iterations).
4. Compute a reduction's leftover epilogue per tile (``reverse_compute_at`` the innermost outer
   loop), so the accumulator stays small, and split the reduction's init into its own block.
Each step is tried on its own and skipped when TVM refuses it, so a rule that does not apply
never fails the build; a PrimFunc the rules cannot handle keeps its legalised loops.
:func:`schedule_summary` counts the parallel and vectorised loops.

Threads (checked in the 0.27 sources, ``src/runtime/thread_pool.cc``, ``threading_backend.cc``):
- The runtime's thread pool is per launching thread (``thread_local``) and is sized once, when
  first used in that thread, to ``MaxConcurrency()``: ``TVM_NUM_THREADS``, else
  ``OMP_NUM_THREADS``, else *half* the logical cores on x86 (so one thread on a 2-core machine).
  ``TVMBackendParallelLaunch`` also runs every parallel loop serially while ``MaxConcurrency()``
  is 1. Python's ``os.environ`` writes reach ``getenv``, so setting them before first use works.
- The global function ``runtime.config_threadpool(mode, nthreads)`` sets how many of the pool's
  workers a parallel loop uses (``min(pool size, nthreads)``); ``runtime.NumThreads`` (Python:
  ``tvm.runtime.num_threads()``) reports it. Neither can grow a pool that already exists.
- Unless ``TVM_BIND_THREADS`` is set to something other than 1, configuring the pool pins each
  worker to one core and restricts the calling (Python) thread's affinity, which would also pin
  torch/onnxruntime threads started later in the process.
So :func:`use_threads` raises ``TVM_NUM_THREADS`` to at least ``max(threads, os.cpu_count())``,
sets ``TVM_BIND_THREADS=0`` unless the user chose a value, calls ``config_threadpool(1, threads)``
and checks that ``num_threads()`` now equals ``threads`` (a ``KernelError`` otherwise: the pool of
this thread started smaller). ``TvmModel`` re-applies its count in the calling thread whenever the
last count set there differs, so runners with different counts can take turns. Idle workers
spin (``sched_yield``) for ``TVM_THREAD_POOL_SPIN_COUNT`` iterations (default 300000, read once
per process) before sleeping; set it to 0 before the first run to stop that.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.errors import KernelError

TVM_MISSING = "the tvm backend needs Apache TVM: pip install 'apache-tvm==0.27.0.post1' 'apache-tvm-ffi<0.1.15'"
# Knobs of the default schedule (module docstring); measured on ofa_mbv3 at 160 px, one thread.
MIN_PARALLEL_WORK = 1 << 18  # loop iterations below which a block stays serial (a launch costs ~10 us)
PARALLEL_CHUNKS = 8  # outer loops are fused for ``parallel`` until they give this many chunks per core
REUSE_TILE = 8  # output-channel register tile of a reduction (8: 4.0 ms in all, 4: 5.0, 16: 5.1)
INLINE_PADDING = False  # inlined padding puts a bounds check on every load: depthwise convs 3-7x slower
_KIND_BIG = 1  # threading::ThreadGroup::kBig, TVM's default affinity mode
_thread_state = threading.local()


def _tvm():
    """The ``tvm`` module, or the one-line install hint as a ``KernelError``."""
    try:
        import tvm
        from tvm import relax  # noqa: F401 - fails on a TVM without Relax (< 0.15)
    except ImportError:
        raise KernelError(TVM_MISSING) from None
    except Exception as err:  # noqa: BLE001 - a broken install (e.g. an incompatible tvm-ffi)
        raise KernelError(f"TVM import failed: {type(err).__name__}: {err}") from err
    return tvm


def _check_threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    return threads


def _prepare_runtime_env(threads: int) -> None:
    os.environ.setdefault("TVM_BIND_THREADS", "0")
    try:
        current = int(os.environ.get("TVM_NUM_THREADS", "0"))
    except ValueError:
        current = 0
    wanted = max(threads, os.cpu_count() or 1)
    if current < wanted:
        os.environ["TVM_NUM_THREADS"] = str(wanted)


def use_threads(threads: int) -> int:
    """Make TVM parallel loops launched from the calling thread use exactly ``threads`` threads."""
    threads = _check_threads(threads)
    tvm = _tvm()
    _prepare_runtime_env(threads)
    try:
        tvm.get_global_func("runtime.config_threadpool")(_KIND_BIG, threads)
        actual = int(tvm.runtime.num_threads())
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM run failed: cannot configure the thread pool: {err}") from err
    if actual != threads:
        raise KernelError(f"TVM run failed: the thread pool of this thread has {actual} threads, not {threads}: "
                          "it started before TVM_NUM_THREADS allowed more; set TVM_NUM_THREADS before the first run")
    _thread_state.threads = threads
    return actual


def host_target(threads: int):
    """The LLVM target for this CPU: ``{"kind": "llvm", "mcpu": <host cpu>, "num-cores": threads}``."""
    threads = _check_threads(threads)
    tvm = _tvm()
    from tvm.target import codegen

    try:
        return tvm.target.Target({"kind": "llvm", "mcpu": str(codegen.llvm_get_system_cpu()), "num-cores": threads})
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM build failed: cannot make the host target: {err}") from err


def import_onnx(path, *, input_shape=None):
    """The Relax ``IRModule`` of the ONNX model at ``path``, its one input at a static shape.

    ``input_shape`` (a tuple of ints) overrides the model's own; it is required when the model's
    input has a symbolic axis."""
    _tvm()
    from tvm.relax.frontend.onnx import from_onnx

    try:
        import onnx

        model = onnx.load(str(Path(path)))
    except ImportError:
        raise KernelError("TVM import failed: reading ONNX needs the onnx package: pip install onnx") from None
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM import failed: cannot read {str(path)!r}: {err}") from err
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise KernelError(f"TVM import failed: expected one model input, got {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if input_shape is not None:
        shape = [int(n) for n in input_shape]
    if any(n is None or n < 1 for n in shape):
        raise KernelError(f"TVM import failed: input {inputs[0].name!r} has a symbolic shape {shape}; "
                          "pass input_shape= for a static build")
    try:
        return from_onnx(model, shape_dict={inputs[0].name: shape})
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM import failed: {type(err).__name__}: {err}") from err


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


def default_schedule(mod, target):
    """``legalize(mod)`` with every PrimFunc scheduled by the simple CPU rules (module docstring)."""
    _tvm()
    from tvm import tirx
    from tvm.target.codegen import llvm_get_vector_width

    mod = legalize(mod, target)
    try:
        lanes = max(int(llvm_get_vector_width(target)) // 32, 4)
    except Exception:  # noqa: BLE001 - a target LLVM cannot describe
        lanes = 4
    cores = int(target.attrs.get("num-cores", 0) or 0) or os.cpu_count() or 1
    try:
        updated = {}
        for gvar, func in mod.functions_items():
            if isinstance(func, tirx.PrimFunc):
                updated[gvar] = _schedule_func(func, lanes, cores)
        for gvar, func in updated.items():
            mod[gvar] = func
        return mod
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM schedule failed: {type(err).__name__}: {err}") from err


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


def _schedule_func(func, lanes: int, cores: int):
    """``func`` scheduled by the rules; ``func`` itself when they cannot even start on it."""
    from tvm import s_tir

    try:
        sch = s_tir.Schedule(func, error_render_level="none")  # refusals are expected: skip printing TIR
        root = sch.get_sblock("root")
        _inline_injective(sch, root)
    except Exception:  # noqa: BLE001 - not a block-form PrimFunc: leave it
        return func
    done = set()
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
    still vectorise such a loop itself)."""
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


def build(mod, target):
    """``tvm.compile`` of ``mod`` for ``target`` (Relax default pipeline): a runtime executable."""
    tvm = _tvm()
    try:
        return tvm.compile(mod, target=target)
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM build failed: {type(err).__name__}: {err}") from err


def export_library(executable, path) -> Path:
    """Write the executable that :func:`build` returned as a shared library at ``path`` (``.so``),
    atomically: a temporary ``.so`` in the same folder (TVM picks the compiler by the suffix) is
    renamed over ``path``. Needs a C compiler on the host (TVM calls ``gcc``/``g++``)."""
    _tvm()
    path = Path(path)
    if not path.parent.is_dir():
        raise KernelError(f"TVM export failed: folder {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".so", dir=path.parent)
    os.close(fd)
    try:
        try:
            executable.export_library(tmp)
        except Exception as err:  # noqa: BLE001
            raise KernelError(f"TVM export failed: {type(err).__name__}: {_first_line(err)}") from err
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_library(path):
    """The runtime module of a shared library that :func:`export_library` wrote (for :class:`TvmModel`)."""
    tvm = _tvm()
    try:
        return tvm.runtime.load_module(str(Path(path)))
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM load failed: cannot load {str(path)!r}: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:300]


class TvmModel:
    """A built executable on ``relax.VirtualMachine`` on ``tvm.cpu()``, run with ``threads`` threads."""

    def __init__(self, executable, *, threads: int) -> None:
        self.threads = _check_threads(threads)
        tvm = _tvm()
        from tvm import relax

        use_threads(self.threads)
        self._tvm = tvm
        try:
            self.device = tvm.cpu()
            self.vm = relax.VirtualMachine(executable, self.device)
            self._main = self.vm["main"]
        except Exception as err:  # noqa: BLE001
            raise KernelError(f"TVM run failed: cannot load the executable: {err}") from err

    def tensor(self, x: np.ndarray):
        """``x`` as a float32 TVM tensor on this model's device (to pass to :meth:`invoke`)."""
        try:
            return self._tvm.runtime.tensor(np.ascontiguousarray(x, dtype=np.float32), self.device)
        except Exception as err:  # noqa: BLE001
            raise KernelError(f"TVM run failed: cannot copy the input: {err}") from err

    def invoke(self, tensor):
        """One inference on a TVM tensor; returns the output tensor (no copy to numpy)."""
        if getattr(_thread_state, "threads", None) != self.threads:
            use_threads(self.threads)
        try:
            return self._main(tensor)
        except Exception as err:  # noqa: BLE001
            raise KernelError(f"TVM run failed: {type(err).__name__}: {err}") from err

    def run(self, x: np.ndarray) -> np.ndarray:
        """One inference on a numpy array; returns the (first) output as numpy."""
        out = self.invoke(self.tensor(x))
        if not hasattr(out, "numpy"):
            out = out[0]
        return out.numpy()


def compile_onnx(path, *, threads: int, schedule: bool = True, input_shape=None) -> TvmModel:
    """Import, schedule (``default_schedule``, or plain ``legalize`` when not ``schedule``), build
    and load the ONNX model at ``path`` for this CPU."""
    target = host_target(threads)
    mod = import_onnx(path, input_shape=input_shape)
    mod = default_schedule(mod, target) if schedule else legalize(mod, target)
    return TvmModel(build(mod, target), threads=threads)

"""TVM build of one ONNX model: import, a simple default schedule, compile, run (Apache TVM 0.27).

Contract: every function imports tvm lazily (``import kernels`` stays light) and every failure is a
:class:`KernelError` naming the step: import, schedule, build or run. Without TVM each raises
:data:`TVM_MISSING`. The path is ``host_target(threads)`` → ``import_onnx(path)`` (static shape) →
``default_schedule(mod, target)`` → ``build(mod, target)`` → ``TvmModel(executable, threads=)``;
:func:`compile_onnx` chains them (through ``kernels.tvm.schedule.build_scheduled``, which rebuilds with
the simple rules alone, and warns, should the special rules give code TVM cannot lower).
:func:`legalize` alone (no schedule) is the untuned "zero"-like build that DESIGN.md measured, kept for
comparison. :func:`export_library` writes a built executable as a shared library (atomic) and
:func:`load_library` reloads it for ``TvmModel``.

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
never fails the build; a PrimFunc the rules cannot handle keeps its legalised loops. Between 1 and
2, for a target with AVX-512 VNNI (``vnni=False`` turns it off): an int8 pointwise conv of an
``integer=True`` build runs on ``vpdpbusd`` (:mod:`kernels.tvm.pointwise`), its epilogue per
register tile; a depthwise conv with at least 32 channels, a multiple of the vector width, runs in
channel blocks (:mod:`kernels.tvm.depthwise`); a matrix-vector product (a pointwise conv on a 1x1
map, the classifier) sums vectors of its reduction axis or of wide column chunks
(:mod:`kernels.tvm.gemv`). ``without=("depthwise", "gemv")`` leaves those two out. Each of these
rules applies all the way or not at all.
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
from pathlib import Path

import numpy as np

from kernels.errors import KernelError
from kernels.tvm._common import TVM_MISSING, _tvm  # noqa: F401 - TVM_MISSING is part of the API
from kernels.tvm.schedule import (  # noqa: F401 - default_schedule and schedule_summary are re-exported
    build_scheduled, default_schedule, legalize, schedule_summary)

_KIND_BIG = 1  # threading::ThreadGroup::kBig, TVM's default affinity mode
_thread_state = threading.local()


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


def import_for_build(path, *, input_shape=None, integer: bool = False):
    """:func:`import_onnx`, and with ``integer`` the QDQ convolutions rewritten to integer compute
    (:func:`kernels.tvm.int8.integer_compute`; a float model is unchanged)."""
    mod = import_onnx(path, input_shape=input_shape)
    if integer:
        from kernels.tvm.int8 import integer_compute

        mod, _ = integer_compute(mod)
    return mod


def relax_text(path, *, input_shape=None, integer: bool = False) -> str:
    """TVMScript text of the Relax module :func:`import_for_build` makes of ``path`` (to read which dtypes
    its ops compute in)."""
    return import_for_build(path, input_shape=input_shape, integer=integer).script()


def build(mod, target):
    """``tvm.compile`` of ``mod`` for ``target`` (Relax default pipeline): a runtime executable."""
    tvm = _tvm()
    try:
        return tvm.compile(mod, target=target)
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM build failed: {type(err).__name__}: {err}") from err


def export_library(executable, path, *, fcompile=None) -> Path:
    """Write the executable that :func:`build` returned as a shared library at ``path`` (``.so``,
    or ``.tar`` of object files), atomically: a temporary file with the same suffix in the same
    folder (TVM picks the packer by the suffix) is renamed over ``path``. A ``.so`` needs a C
    compiler on the host (TVM calls ``gcc``/``g++``, or ``fcompile``, e.g. a cross compiler)."""
    _tvm()
    path = Path(path)
    if not path.parent.is_dir():
        raise KernelError(f"TVM export failed: folder {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".so", dir=path.parent)
    os.close(fd)
    try:
        try:
            executable.export_library(tmp, **({} if fcompile is None else {"fcompile": fcompile}))
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

    vnni_functions: int | None = None  # set by compile_onnx for an integer build

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


def compile_onnx(path, *, threads: int, schedule: bool = True, input_shape=None, integer: bool = False,
                 vnni: bool | None = None, without=()) -> TvmModel:
    """Import (``integer``: QDQ convolutions in integer compute, :func:`import_for_build`), schedule
    (``build_scheduled``: the default rules, int8 pointwise convs on VNNI per ``vnni``, leaving out the
    shape rules named in ``without``; or plain ``legalize`` when not ``schedule``), build and load the
    ONNX model at ``path`` for this CPU. An ``integer`` build's model says in ``vnni_functions`` how
    many of its PrimFuncs run on ``vpdpbusd``."""
    target = host_target(threads)
    mod = import_for_build(path, input_shape=input_shape, integer=integer)
    scheduled = legalize(mod, target)
    if schedule:
        executable, scheduled = build_scheduled(scheduled, target, vnni=vnni, without=without)
    else:
        executable = build(scheduled, target)
    model = TvmModel(executable, threads=threads)
    if integer:
        from kernels.tvm.pointwise import vnni_functions

        model.vnni_functions = vnni_functions(scheduled)
    return model

"""TVM targets beyond the host CPU: CUDA GPUs, cross-compiled ARM boards and C source for MCUs.

Contract (Apache TVM 0.27; every call imports tvm lazily, every failure is a :class:`KernelError`
naming the step):
- :func:`make_target` turns a :class:`TargetSpec` into a dict-form ``tvm.target.Target``: ``llvm``
  for this host (:func:`kernels.tvm.build.host_target`), ``llvm`` with an ``mtriple`` for a board
  (e.g. ``aarch64-linux-gnu``), ``cuda`` with an ``arch`` (``sm_90``) and the host as its host,
  or ``c`` (portable C source, the only microcontroller path left in 0.27: microTVM, AOT and the
  CRT were removed).
- :func:`schedule_for` gives every target an untuned schedule that builds: the host CPU's simple
  rules (:mod:`kernels.tvm.schedule`), the same rules for a board (lanes from its target), dlight's
  GPU rules for CUDA (each rule tried in turn: 0.27's GEMV rule asserts on some fused
  reductions instead of declining them), plain legalised loops for ``c``.
- :func:`build_for` compiles; CUDA needs ``nvcc`` on the PATH (TVM compiles the generated CUDA C
  with it) but no GPU, so a CUDA library is built anywhere nvcc is and runs only where a GPU is.
- :func:`export_for` writes the library: ``.so`` (host CPU, CUDA, or a board when
  ``cross_compiler`` names a compiler on the PATH, e.g. ``aarch64-linux-gnu-g++``) or ``.tar`` of
  object files (any target; a board links it itself). A ``c`` build's ``.tar`` holds the C source
  (``lib0.c``...) for an MCU toolchain; written as ``.so`` it is compiled for this host instead,
  which is how its parity is checked here. Atomic like
  :func:`kernels.tvm.build.export_library`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from kernels.errors import KernelError
from kernels.tvm.build import build, export_library, host_target
from kernels.tvm._common import _tvm
from kernels.tvm.schedule import build_scheduled, legalize, schedule_legalized

KINDS = ("llvm", "cuda", "c")


@dataclass(frozen=True)
class TargetSpec:
    """What to build for. ``kind``: ``llvm`` (CPU), ``cuda`` or ``c``. For ``llvm``, an empty
    ``mtriple`` means this host; otherwise ``mtriple``/``mcpu``/``mattr`` describe the board.
    ``arch`` is the CUDA compute capability (``sm_80``, ``sm_90``). ``cross_compiler`` links a
    board's ``.so`` (empty: export a ``.tar`` of object files)."""

    kind: str = "llvm"
    threads: int = 1
    mtriple: str = ""
    mcpu: str = ""
    mattr: tuple[str, ...] = ()
    arch: str = ""
    cross_compiler: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise KernelError(f"TVM target failed: kind must be one of {list(KINDS)}, got {self.kind!r}")
        if self.kind == "cuda" and not self.arch.startswith("sm_"):
            raise KernelError(f"TVM target failed: a cuda target needs arch like 'sm_90', got {self.arch!r}")

    @property
    def is_host(self) -> bool:
        return self.kind == "llvm" and not self.mtriple

    @property
    def runs_here(self) -> bool:
        """Whether a library for this target can be loaded on this machine (CUDA: if a GPU is)."""
        return self.is_host or self.kind == "cuda"


def make_target(spec: TargetSpec):
    """The dict-form ``tvm.target.Target`` for ``spec``."""
    tvm = _tvm()
    if spec.is_host:
        return host_target(spec.threads)
    if spec.kind == "llvm":
        config = {"kind": "llvm", "mtriple": spec.mtriple, "num-cores": spec.threads}
        if spec.mcpu:
            config["mcpu"] = spec.mcpu
        if spec.mattr:
            config["mattr"] = list(spec.mattr)
    elif spec.kind == "cuda":
        config = {"kind": "cuda", "arch": spec.arch, "max_shared_memory_per_block": 49152,
                  "max_threads_per_block": 1024, "max_num_threads": 1024, "thread_warp_size": 32}
    else:
        config = {"kind": "c"}
    try:
        if spec.kind == "cuda":
            return tvm.target.Target(config, host=host_target(spec.threads))
        return tvm.target.Target(config)
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM target failed: {config}: {type(err).__name__}: {err}") from err


def _gpu_schedule(mod, target):
    """Every unscheduled PrimFunc of a legalised ``mod`` scheduled by the first dlight GPU rule that
    applies without error (Fallback last, which handles anything injective or reducing)."""
    _tvm()
    from tvm import tirx
    from tvm.s_tir import dlight as dl

    rules = [dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback()]
    updated = {}
    for gvar, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc) or int(func.attrs.get("tirx.is_scheduled", 0) or 0) == 1:
            continue
        for rule in rules:
            try:
                with target:
                    space = rule.apply(func, target, False)
            except Exception:  # noqa: BLE001 - a rule that asserts is a rule that does not apply
                continue
            if space is None:
                continue
            sch = space[0] if isinstance(space, list) else space
            updated[gvar] = sch.mod["main"].with_attr("tirx.is_scheduled", True)
            break
        else:
            raise KernelError(f"TVM schedule failed: no GPU rule schedules {gvar.name_hint}")
    for gvar, func in updated.items():
        mod[gvar] = func
    return mod


def schedule_for(mod, spec: TargetSpec, target=None):
    """``mod`` (Relax, from :func:`kernels.tvm.build.import_onnx`) legalised and scheduled for
    ``spec`` with the untuned rules that fit its kind (module docstring)."""
    target = target if target is not None else make_target(spec)
    legal = legalize(mod, target)
    if spec.kind == "c":
        return legal
    if spec.kind == "cuda":
        try:
            return _gpu_schedule(legal, target)
        except KernelError:
            raise
        except Exception as err:  # noqa: BLE001
            raise KernelError(f"TVM schedule failed: GPU rules: {type(err).__name__}: {err}") from err
    return schedule_legalized(legal, target)


def nvcc_missing_reason() -> str | None:
    """None when ``nvcc`` (needed to build any CUDA library) is on the PATH, else why not."""
    return None if shutil.which("nvcc") else "nvcc (the CUDA compiler) is not on the PATH"


def build_for(mod, spec: TargetSpec):
    """Schedule and compile ``mod`` for ``spec``; returns the executable."""
    if spec.kind == "cuda" and nvcc_missing_reason():
        raise KernelError(f"TVM build failed: a CUDA build needs {nvcc_missing_reason()}")
    target = make_target(spec)
    if spec.kind not in ("c", "cuda"):  # a CPU: the default rules, the simple ones alone should those not build
        return build_scheduled(legalize(mod, target), target)[0]
    return build(schedule_for(mod, spec, target), target)


def library_suffix(spec: TargetSpec) -> str:
    """``.so`` where this machine can link the library, else ``.tar`` (object files)."""
    if spec.kind == "c" or (spec.mtriple and not (spec.cross_compiler and shutil.which(spec.cross_compiler))):
        return ".tar"
    return ".so"


def export_for(executable, spec: TargetSpec, path) -> Path:
    """Write ``executable`` for ``spec`` at ``path`` (its suffix must be :func:`library_suffix`)."""
    path = Path(path)
    host_c = spec.kind == "c" and path.suffix == ".so"  # C source compiled for this host, to check it
    if path.suffix != library_suffix(spec) and not host_c:
        raise KernelError(f"TVM export failed: {spec.kind} {spec.mtriple or ''} libraries are written as "
                          f"{library_suffix(spec)} here, not {path.suffix!r}")
    if path.suffix == ".so" and spec.mtriple:
        _tvm()
        from tvm.support import cc

        return export_library(executable, path, fcompile=cc.cross_compiler(spec.cross_compiler))
    return export_library(executable, path)


def run_cuda_library(path, x, *, warmup: int = 5, repeats: int = 30):
    """Load a CUDA library that :func:`export_for` wrote on ``tvm.cuda(0)``, run it on ``x`` and time
    it (synchronised, :func:`kernels.timing.measure`); ``(Timing, first output as numpy)``."""
    import numpy as np

    from kernels.timing import measure

    tvm = _tvm()
    from tvm import relax

    try:
        dev = tvm.cuda(0)
        vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), dev)
        tensor = tvm.runtime.tensor(np.ascontiguousarray(x, dtype=np.float32), dev)
        out = vm["main"](tensor)
        out = (out if hasattr(out, "numpy") else out[0]).numpy()
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM run failed: the CUDA library {str(path)!r}: {type(err).__name__}: {err}") from err

    def call():
        vm["main"](tensor)
        dev.sync()

    return measure({"tvm-cuda": call}, warmup=warmup, repeats=repeats, threads=1)["tvm-cuda"], out

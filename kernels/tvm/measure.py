"""Latency of one module compiled by TVM for a target, measured here or on a board over TVM RPC.

Contract: :func:`measure_tvm` exports ``module`` to ONNX (a temporary folder, removed after),
imports it into Relax, compiles it for ``spec`` (:mod:`kernels.tvm.targets`) and times it. With a
``database``, on this host the build is the one ``nas export`` ships: only the records that make the whole
network faster (:func:`kernels.tvm.select.compile_never_slower`, two or three builds); over RPC every
record of the database is applied (the selection would have to time on the board). Without one every
task is default-scheduled (:func:`kernels.tvm.db.compile_relax`). Then:
- without ``rpc``: on this host, ``spec`` must be the host CPU; :func:`kernels.timing.measure`
  (``warmup`` calls, ``repeats`` samples) with ``spec.threads`` threads;
- with ``rpc``: the library is written as a ``.so`` for the target (a cross compiler is needed for
  a board's ``mtriple``), uploaded to the server registered under ``rpc.key`` at the tracker and
  timed there (:func:`kernels.tvm.rpc.measure_remote`).
The result is a :class:`TvmMeasurement`: the :class:`~kernels.timing.Timing`, the first output on
the seeded input (for parity checks) and the database hit statistics.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.errors import KernelError
from kernels.timing import Timing, check_protocol, measure


@dataclass(frozen=True)
class RpcEndpoint:
    """A TVM RPC tracker and the key its board registers under."""

    host: str
    port: int
    key: str

    @classmethod
    def parse(cls, tracker: str, key: str) -> "RpcEndpoint":
        """``"HOST:PORT"`` and a key; a :class:`KernelError` naming the bad part otherwise."""
        host, sep, port = str(tracker).rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise KernelError(f"TVM RPC failed: tracker must be HOST:PORT such as 127.0.0.1:9190, got {tracker!r}")
        if not key:
            raise KernelError("TVM RPC failed: the board's tracker key is empty")
        return cls(host, int(port), key)

    def __str__(self) -> str:
        return f"{self.key}@{self.host}:{self.port}"


@dataclass(frozen=True)
class TvmMeasurement:
    timing: Timing
    output: np.ndarray
    stats: object  # kernels.tvm.db.HitStats: tasks with a tuning record and their FLOPs share


def measure_tvm(module, example_input, spec, *, database=None, rpc: RpcEndpoint | None = None,
                warmup: int = 5, repeats: int = 30) -> TvmMeasurement:
    """Compile ``module`` for ``spec`` and time it (module docstring)."""
    from kernels.onnx_export import export_onnx
    from kernels.tvm.build import TvmModel, import_onnx
    from kernels.tvm.db import compile_relax
    from kernels.tvm.targets import export_for, make_target

    check_protocol(warmup=warmup, repeats=repeats, threads=spec.threads)
    if not hasattr(module, "eval"):  # e.g. a kernels.quantize.QuantizedOnnx
        raise KernelError("TVM run refused: a search measures int8 (QDQ) models with onnxruntime; TVM's int8 build "
                          "is checked at export (nas export --quantize --format tvm, tuned with --tune-minutes): its tasks "
                          "carry the subnet's quantization scales, so no space tuning database covers them")
    if rpc is None and not spec.is_host:
        raise KernelError(f"TVM run failed: a {spec.kind} {spec.mtriple} build cannot run on this host; "
                          "measure it on the board over RPC")
    x = example_input.detach().numpy().astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="hwnas-tvm-") as tmp:
        onnx_path = export_onnx(module.eval(), example_input, Path(tmp) / "model.onnx")
        mod, target = import_onnx(onnx_path), make_target(spec)
        if rpc is None and database is not None:
            from kernels.tvm.select import compile_never_slower

            selection = compile_never_slower(mod, target, database, x=x, threads=spec.threads)
            executable, stats = selection.executable, selection.stats
        else:
            executable, stats, _ = compile_relax(mod, target, database)
        if rpc is not None:
            from kernels.tvm.rpc import measure_remote

            library = export_for(executable, spec, Path(tmp) / "model.so")
            remote = measure_remote(library, x, tracker_host=rpc.host, tracker_port=rpc.port, key=rpc.key,
                                    repeats=repeats, threads=spec.threads)
            timing, output = remote.timing, remote.output
        else:
            model = TvmModel(executable, threads=spec.threads)
            tensor = model.tensor(x)
            timing = measure({"tvm": lambda: model.invoke(tensor)}, warmup=warmup, repeats=repeats,
                             threads=spec.threads)["tvm"]
            output = model.run(x)
    return TvmMeasurement(timing, output, stats)

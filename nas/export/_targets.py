"""The TVM artefact of ``nas export`` for a device other than this host: a board over RPC, a GPU, an MCU.

Contract: :func:`export_tvm_for_device` compiles the subnet for the profile's TVM target
(:func:`hw_profiles.targets.tvm_target_spec`) and writes ``model_<profile>.so`` or ``.tar``
(:func:`kernels.tvm.targets.library_suffix`) into the export folder. Then it verifies what can be
verified, and says so in the entry:
- a board with an ``rpc_key`` (``.so`` linked by its cross compiler): the library is uploaded and
  run there through TVM RPC: parity against torch and the latency, ``measured`` on the board;
- a GPU profile whose card is here: loaded on ``tvm.cuda()``: parity and latency ``measured``;
- an MCU profile: the ``.tar`` holds C source (``lib0.c``...) for the vendor toolchain; the same C is
  compiled for this host and run for parity (latency stays the analytic estimate);
- otherwise the entry has ``"verified": false`` and the reason (no board reachable, no GPU, no cross
  compiler). A failed parity check is an error, as on the host.
The entry's ``latency_ms`` is a measured metric dict, or absent. Cross builds use no tuning database:
``nas tune-space`` tunes on this host only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def is_host_profile(profile) -> bool:
    """Whether ``profile`` is measured on this host (a cpu profile with no board triple and no RPC key)."""
    return profile.kind == "cpu" and not profile.spec.mtriple and not profile.spec.rpc_key


def export_tvm_for_device(module, x, reference, folder: Path, *, profile, parity, rpc_tracker: str | None = None,
                          warmup: int = 3, repeats: int = 20) -> dict:
    """Build, write and verify the TVM library of ``module`` for ``profile`` (module docstring).
    ``parity(reference, output) -> dict`` is the exporter's parity check (raises on failure)."""
    from hw_profiles.measured import gpu_unavailable_reason
    from hw_profiles.metric import Metric
    from hw_profiles.targets import rpc_endpoint, tvm_target_spec
    from kernels.onnx_export import export_onnx
    from kernels.tvm.build import TvmModel, import_onnx, load_library
    from kernels.tvm.targets import build_for, export_for, library_suffix, run_cuda_library

    spec = tvm_target_spec(profile)
    name = f"model_{profile.name}{library_suffix(spec)}"
    x_np = x.numpy()
    with tempfile.TemporaryDirectory(prefix="tvm-", dir=folder) as work:
        onnx_path = export_onnx(module, x, Path(work) / "static.onnx")
        executable = build_for(import_onnx(onnx_path), spec)
        library = export_for(executable, spec, folder / name)
        entry = {"file": name, "target": spec.kind if spec.kind != "llvm" else f"llvm {spec.mtriple}",
                 "schedule": "untuned (dlight GPU rules)" if spec.kind == "cuda" else "untuned default schedule",
                 "batch": int(x.shape[0]), "verified": False}
        timing = None
        if spec.kind == "c":
            host_so = export_for(executable, spec, Path(work) / "host_check.so")
            out = TvmModel(load_library(host_so), threads=1).run(x_np)
            entry["parity"] = {**parity(reference, out), "against": "the extracted subnet (torch)",
                               "runtime": "the C source compiled for this host"}
            entry["verified"] = True
            entry["note"] = ("C source for the MCU toolchain (TVM 0.27 has no microTVM/AOT/CRT): add lib0.c and "
                             "devc.c to the firmware with the TVM C runtime headers; latency is the analytic estimate")
        elif spec.kind == "cuda":
            reason = gpu_unavailable_reason(profile)
            if reason is None:
                timing, out = run_cuda_library(library, x_np, warmup=warmup, repeats=repeats)
                entry["parity"] = {**parity(reference, out), "against": "the extracted subnet (torch)",
                                   "runtime": "relax.VirtualMachine on tvm.cuda()"}
                entry["verified"] = True
            else:
                entry["reason"] = f"built for {spec.arch}, not run: {reason}"
        else:
            rpc = rpc_endpoint(profile, tracker=rpc_tracker)
            if library.suffix != ".so":
                entry["reason"] = (f"no cross compiler {spec.cross_compiler or '(none named)'} on the PATH: object files "
                                   f"in a .tar; link them on the board (g++ -shared) or install the cross compiler")
            elif rpc is None:
                entry["reason"] = f"{profile.ref} names no rpc_key: the library was not run"
            else:
                from kernels import KernelError
                from kernels.tvm.rpc import measure_remote

                try:
                    remote = measure_remote(library, x_np, tracker_host=rpc.host, tracker_port=rpc.port, key=rpc.key,
                                            repeats=repeats, threads=spec.threads)
                except KernelError as err:
                    entry["reason"] = f"the board was not reachable over RPC ({rpc}): {err}"
                else:
                    timing = remote.timing
                    entry["parity"] = {**parity(reference, remote.output), "against": "the extracted subnet (torch)",
                                       "runtime": f"the board over TVM RPC ({rpc})"}
                    entry["verified"] = True
    if timing is not None:
        entry["latency_ms"] = Metric(value=timing.median_ms, unit="ms", source="measured", profile=profile.ref,
                                     spread=timing.iqr_ms).to_dict()
    return entry

"""kernels.tvm.targets: builds for a cross-compiled ARM board, C source for MCUs and CUDA, on a real
enlivened tiny_mbv3 subnet. What can run here runs and is checked against torch."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch

from kernels import KernelError
from kernels.onnx_export import export_onnx
from kernels.tvm.build import TvmModel, import_onnx, load_library
from kernels.tvm.targets import TargetSpec, build_for, export_for, library_suffix, nvcc_missing_reason

pytestmark = pytest.mark.tvm
AARCH64 = TargetSpec("llvm", threads=4, mtriple="aarch64-linux-gnu", mcpu="cortex-a72", mattr=("+neon",))
ELF_MACHINE_AARCH64 = 183


@pytest.fixture(scope="module")
def relax_mod(subnet, tmp_path_factory):
    module, shape = subnet
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = module(x).numpy()
    path = export_onnx(module, x, tmp_path_factory.mktemp("onnx") / "m.onnx")
    return import_onnx(path), x.numpy(), ref


def _close(out, ref):
    return np.abs(out - ref).max() <= 1e-3 * max(1.0, float(np.abs(ref).max()))


def test_aarch64_cross_build_writes_arm_object_files(relax_mod, tmp_path):
    mod, _, _ = relax_mod
    assert library_suffix(AARCH64) == ".tar"  # no cross compiler named: object files
    path = export_for(build_for(mod, AARCH64), AARCH64, tmp_path / "model.tar")
    with tarfile.open(path) as tar:
        objects = [m for m in tar.getmembers() if m.name.endswith(".o")]
        assert objects
        header = tar.extractfile(objects[0]).read(20)
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[18:20], "little") == ELF_MACHINE_AARCH64
    assert not list(tmp_path.glob(".model.*"))  # no temporary left behind


def test_c_target_emits_c_source_that_runs_with_parity(relax_mod, tmp_path):
    mod, x, ref = relax_mod
    spec = TargetSpec("c")
    executable = build_for(mod, spec)
    with tarfile.open(export_for(executable, spec, tmp_path / "model.tar")) as tar:
        sources = [n for n in tar.getnames() if n.endswith(".c")]
        text = tar.extractfile(sources[0]).read().decode()
    assert sources and "TVM_DLL" in text or "int32_t" in text
    library = export_for(executable, spec, tmp_path / "model.so")  # the same C, compiled for this host
    out = TvmModel(load_library(library), threads=1).run(x)
    assert _close(out, ref), np.abs(out - ref).max()


def test_cuda_build_needs_no_gpu_but_nvcc(relax_mod, tmp_path):
    if nvcc_missing_reason():
        pytest.skip(nvcc_missing_reason())
    mod, _, _ = relax_mod
    spec = TargetSpec("cuda", threads=1, arch="sm_80")
    executable = build_for(mod, spec)
    assert "cuda" in _module_kinds(executable.mod)  # device code compiled by nvcc, beside the host code
    path = export_for(executable, spec, tmp_path / "model.so")
    assert path.stat().st_size > 0


def _module_kinds(module) -> set[str]:
    return {module.kind} | {kind for sub in module.imports for kind in _module_kinds(sub)}


@pytest.mark.gpu
def test_cuda_library_runs_on_the_gpu_with_parity(relax_mod, tmp_path):
    from kernels.cuda import cuda_unavailable_reason

    if cuda_unavailable_reason() or nvcc_missing_reason():
        pytest.skip(cuda_unavailable_reason() or nvcc_missing_reason())
    import tvm
    from tvm import relax

    mod, x, ref = relax_mod
    major, minor = torch.cuda.get_device_capability(0)
    spec = TargetSpec("cuda", threads=1, arch=f"sm_{major}{minor}")
    path = export_for(build_for(mod, spec), spec, tmp_path / "model.so")
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cuda(0))
    out = vm["main"](tvm.runtime.tensor(x, tvm.cuda(0)))
    out = (out if hasattr(out, "numpy") else out[0]).numpy()
    assert _close(out, ref), np.abs(out - ref).max()


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "vulkan"}, "kind must be one of"),
    ({"kind": "cuda"}, "needs arch like 'sm_90'"),
])
def test_bad_target_specs_are_refused(kwargs, message):
    with pytest.raises(KernelError, match=message):
        TargetSpec(**kwargs)


def test_export_refuses_a_suffix_this_machine_cannot_write(relax_mod, tmp_path):
    mod, _, _ = relax_mod
    with pytest.raises(KernelError, match="written as .tar here"):
        export_for(object(), AARCH64, tmp_path / "model.so")

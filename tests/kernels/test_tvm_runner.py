"""The TVM backend: TvmRunner on a real extracted tiny_mbv3 subnet, and kernels.tvm.build's steps."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

from kernels import KernelError
from kernels.onnx_export import export_onnx
from kernels.runners import BACKENDS, TvmRunner, make_runner

pytestmark = pytest.mark.tvm
SMALL = (1, 3, 32, 32)


def close(out, ref):
    """Max abs diff < 1e-4 relative to the output scale (float32 rounding differs between backends)."""
    return np.abs(out - ref).max() < 1e-4 * max(1.0, float(np.abs(ref).max()))


def inputs(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tvm_runner(subnet):
    pytest.importorskip("tvm")
    module, shape = subnet
    return make_runner("tvm", module, inputs(shape, 0), threads=2)


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    """Conv, depthwise conv, pointwise conv, pool, linear; big enough for parallel loops (each conv
    runs over ``MIN_PARALLEL_WORK`` iterations), and schedules in about a second."""
    pytest.importorskip("tvm")
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
                           nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.Hardswish(),
                           nn.Conv2d(32, 64, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)).eval()
    path = export_onnx(module, inputs(SMALL, 0), tmp_path_factory.mktemp("small") / "small.onnx")
    return module, path


def test_tvm_runner_parity_with_torch(subnet, tvm_runner):
    module, shape = subnet
    assert "tvm" in BACKENDS and isinstance(tvm_runner, TvmRunner) and tvm_runner.backend == "tvm"
    assert tvm_runner.threads == 2 and tvm_runner.build_s > 0
    a, b = inputs(shape, 1), inputs(shape, 2)
    with torch.no_grad():
        ref_a, ref_b = module(a).numpy(), module(b).numpy()
    out_a, out_b = tvm_runner.run(a.numpy()), tvm_runner.run(b.numpy())
    assert out_a.shape == ref_a.shape and out_a.dtype == np.float32
    assert close(out_a, ref_a) and close(out_b, ref_b)
    assert np.abs(out_a - out_b).max() > 1e-2  # lively weights: the check can tell inputs apart
    stored = tvm_runner()  # one inference on the stored example input, no copy to numpy
    with torch.no_grad():
        assert close(stored.numpy(), module(inputs(shape, 0)).numpy())


def test_default_schedule_parallelises_and_vectorises(small_onnx):
    from kernels.tvm import build as tvm_build

    module, path = small_onnx
    mod = tvm_build.import_onnx(path)
    plain = tvm_build.schedule_summary(tvm_build.legalize(mod, tvm_build.host_target(2)))
    scheduled = tvm_build.default_schedule(mod, tvm_build.host_target(2))
    summary = tvm_build.schedule_summary(scheduled)
    assert plain.prim_funcs == summary.prim_funcs > 0
    assert plain.parallel_loops == plain.vectorized_loops == 0
    assert summary.parallel_loops > 0 and summary.vectorized_loops > 0
    one_core = tvm_build.schedule_summary(tvm_build.default_schedule(mod, tvm_build.host_target(1)))
    assert one_core.parallel_loops == 0 and one_core.vectorized_loops > 0
    model = tvm_build.TvmModel(tvm_build.build(scheduled, tvm_build.host_target(2)), threads=2)
    x = inputs(SMALL, 4)
    with torch.no_grad():
        assert close(model.run(x.numpy()), module(x).numpy())


def test_host_target_is_this_cpu():
    tvm = pytest.importorskip("tvm")
    from kernels.tvm import build as tvm_build

    target = tvm_build.host_target(3)
    assert target.kind.name == "llvm" and int(target.attrs["num-cores"]) == 3
    assert str(target.attrs["mcpu"]) == str(tvm.target.codegen.llvm_get_system_cpu())
    with pytest.raises(ValueError, match="threads.*0"):
        tvm_build.host_target(0)


def test_thread_count_is_exact_and_switches(small_onnx, monkeypatch):
    tvm = pytest.importorskip("tvm")
    from kernels.tvm import build as tvm_build

    _, path = small_onnx
    target = tvm_build.host_target(2)
    executable = tvm_build.build(tvm_build.default_schedule(tvm_build.import_onnx(path), target), target)
    one = tvm_build.TvmModel(executable, threads=1)
    two = tvm_build.TvmModel(executable, threads=2)
    x = inputs(SMALL, 5).numpy()
    for model in (one, two, one, two):  # interleaved, as the timing protocol runs them
        out = model.run(x)
        assert tvm.runtime.num_threads() == model.threads
    assert close(one.run(x), out)
    monkeypatch.delenv("TVM_BIND_THREADS", raising=False)
    tvm_build.use_threads(2)
    assert os.environ["TVM_BIND_THREADS"] == "0"  # TVM would pin its workers and this thread to cores
    # the pool of a thread is sized when it starts and cannot grow: asking for more is an error
    pool_cap = int(os.environ["TVM_NUM_THREADS"])
    monkeypatch.setenv("TVM_NUM_THREADS", str(pool_cap))  # restored after the test
    with pytest.raises(KernelError, match="TVM run failed.*TVM_NUM_THREADS"):
        tvm_build.use_threads(pool_cap + 1)
    assert tvm_build.use_threads(1) == 1


def test_failures_name_the_step(small_onnx, tmp_path):
    pytest.importorskip("tvm")
    from kernels.tvm import build as tvm_build

    _, path = small_onnx
    with pytest.raises(KernelError, match="TVM import failed.*nope.onnx"):
        tvm_build.import_onnx(tmp_path / "nope.onnx")
    with pytest.raises(KernelError, match="TVM import failed.*symbolic"):
        dynamic = export_onnx(nn.Flatten(), torch.zeros(2, 3), tmp_path / "dyn.onnx", dynamic_batch=True)
        tvm_build.import_onnx(dynamic)
    target = tvm_build.host_target(1)
    model = tvm_build.TvmModel(tvm_build.build(tvm_build.legalize(tvm_build.import_onnx(path), target), target),
                               threads=1)
    with pytest.raises(KernelError, match="TVM run failed"):
        model.run(np.zeros((1, 3, 8, 8), dtype=np.float32))  # the build is for 32x32


def test_missing_tvm_names_pip_install(subnet, monkeypatch):
    from kernels.tvm import build as tvm_build

    monkeypatch.setitem(sys.modules, "tvm", None)  # what `import tvm` sees when it is not installed
    module, shape = subnet
    hint = r"the tvm backend needs Apache TVM: pip install 'apache-tvm==0\.27\.0\.post1' 'apache-tvm-ffi<0\.1\.15'"
    with pytest.raises(KernelError, match=hint):
        make_runner("tvm", module, inputs(shape, 0), threads=1)
    with pytest.raises(KernelError, match=hint):
        tvm_build.host_target(1)

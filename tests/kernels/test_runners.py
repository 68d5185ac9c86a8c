"""ONNX export and the onnxruntime/torch runners, on a real extracted tiny_mbv3 subnet (tvm: test_tvm_runner)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from kernels import KernelError
from kernels.onnx_export import export_onnx
from kernels.runners import OrtRunner, TorchRunner, make_runner


def close(out, ref):
    """Max abs diff < 1e-4, relative to the output scale: enlivened logits reach ~800, where
    float32 rounding alone differs by ~1e-2 between backends (about 2e-5 relative)."""
    return np.abs(out - ref).max() < 1e-4 * max(1.0, float(np.abs(ref).max()))


def inputs(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_export_is_checked_and_named(tmp_path, subnet):
    module, shape = subnet
    path = export_onnx(module, inputs(shape, 0), tmp_path / "m.onnx")
    assert path == tmp_path / "m.onnx" and path.is_file()
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp file left behind


def test_dynamic_batch_runs_batch_3(tmp_path, subnet):
    import onnxruntime as ort

    module, shape = subnet
    path = export_onnx(module, inputs(shape, 0), tmp_path / "d.onnx", dynamic_batch=True)
    x = inputs((3, *shape[1:]), 1)
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = module(x).numpy()
    assert out.shape == ref.shape == (3, ref.shape[1])
    assert close(out, ref)


def test_export_failure_is_a_kernel_error(tmp_path):
    class Bad(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(KernelError, match="ONNX export failed.*boom"):
        export_onnx(Bad(), torch.zeros(1, 3), tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KernelError, match="does not exist"):
        export_onnx(Bad(), torch.zeros(1, 3), tmp_path / "nope" / "bad.onnx")


@pytest.mark.parametrize("backend, cls", [("onnxruntime", OrtRunner), ("torch", TorchRunner)])
def test_runner_parity_with_torch(subnet, backend, cls):
    module, shape = subnet
    runner = make_runner(backend, module, inputs(shape, 0), threads=1)
    assert isinstance(runner, cls) and runner.backend == backend
    a, b = inputs(shape, 1), inputs(shape, 2)
    with torch.no_grad():
        ref_a, ref_b = module(a).numpy(), module(b).numpy()
    out_a, out_b = runner.run(a.numpy()), runner.run(b.numpy())
    assert close(out_a, ref_a) and close(out_b, ref_b)
    assert np.abs(out_a - out_b).max() > 1e-2  # lively weights: the check can tell inputs apart
    if backend == "onnxruntime":  # the non-spinning session for interleaved timing gives the same numbers
        quiet = make_runner(backend, module, inputs(shape, 0), threads=1, spin=False)
        assert close(quiet.run(a.numpy()), ref_a)
    threads = torch.get_num_threads()
    runner()  # one inference on the stored example input
    assert torch.get_num_threads() == threads  # the process-wide setting is restored


def test_unknown_backend(subnet):
    module, shape = subnet
    with pytest.raises(KernelError, match="unknown backend 'tensorrt'.*onnxruntime"):
        make_runner("tensorrt", module, inputs(shape, 0), threads=1)
    with pytest.raises(ValueError, match="threads.*0"):
        make_runner("torch", module, inputs(shape, 0), threads=0)


def test_missing_onnxruntime_names_pip_install(subnet, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("no onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    module, shape = subnet
    with pytest.raises(KernelError, match="pip install onnxruntime"):
        make_runner("onnxruntime", module, inputs(shape, 0), threads=1)


def _flushing() -> bool:
    return torch.tensor([1e-40], dtype=torch.float32).item() == 0.0


@pytest.mark.parametrize("before", [False, True])
def test_denormals_are_flushed_only_inside_the_block(before):
    from kernels.runners import denormals_flushed

    was = _flushing()
    torch.set_flush_denormal(before)
    try:
        with denormals_flushed():
            assert _flushing()
        assert _flushing() is before
        with pytest.raises(RuntimeError), denormals_flushed():
            raise RuntimeError("boom")
        assert _flushing() is before
    finally:
        torch.set_flush_denormal(was)

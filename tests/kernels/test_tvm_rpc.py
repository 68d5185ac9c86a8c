"""kernels.tvm.rpc: a TVM library measured through a loopback tracker + server, checked against a local run."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from torch import nn

from kernels import KernelError
from kernels.onnx_export import export_onnx

pytestmark = pytest.mark.tvm
SHAPE = (1, 3, 32, 32)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    pytest.importorskip("tvm")
    from kernels.tvm import build as tvm_build

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 1),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()
    folder = tmp_path_factory.mktemp("rpc")
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    path = export_onnx(module, x, folder / "small.onnx")
    target = tvm_build.host_target(1)
    mod = tvm_build.default_schedule(tvm_build.import_onnx(path), target)
    executable = tvm_build.build(mod, target)
    so = tvm_build.export_library(executable, folder / "small.so")
    return so, tvm_build.TvmModel(executable, threads=1), x.numpy()


@pytest.mark.slow
def test_measure_remote_on_loopback(library):
    from kernels.timing import measure
    from kernels.tvm.rpc import LoopbackRpc, measure_remote

    so, local, x = library
    with LoopbackRpc(key="hwnas-test") as rpc:
        assert rpc.tracker_host == "127.0.0.1" and rpc.key == "hwnas-test" and _port_open(rpc.tracker_port)
        got = measure_remote(so, x, tracker_host=rpc.tracker_host, tracker_port=rpc.tracker_port,
                             key=rpc.key, repeats=15, number=2, timeout_s=60)
        procs, port = (rpc.tracker, rpc.server), rpc.tracker_port
    t = got.timing
    assert t.backend == "tvm-rpc" and t.repeats == 15 and t.median_s > 0 and t.iqr_s >= 0
    ref = local.run(x)
    assert got.output.shape == ref.shape and np.allclose(got.output, ref, rtol=1e-5, atol=1e-5)
    assert all(p.poll() is not None for p in procs) and not _port_open(port)
    tensor = local.tensor(x)
    local_t = measure({"tvm": lambda: local.invoke(tensor)}, warmup=3, repeats=15, threads=1)["tvm"]
    print(f"remote median {t.median_ms:.3f} ms (IQR {t.iqr_ms:.3f}), local median {local_t.median_ms:.3f} ms")


def test_closed_port_raises_connect_error(tmp_path):
    pytest.importorskip("tvm")
    from kernels.tvm.rpc import measure_remote

    so = tmp_path / "x.so"
    so.write_bytes(b"")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    with pytest.raises(KernelError, match="connect"):
        measure_remote(so, np.zeros(SHAPE, np.float32), tracker_host="127.0.0.1", tracker_port=port, key="none")

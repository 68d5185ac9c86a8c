"""`nas export --device` for targets other than this host: an MCU (C source), a cross-compiled board
(measured over a loopback TVM RPC board), a GPU built without one, and an FPGA refused."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from nas.cli import main
from nas.export.subnet import ExportError, export_subnet
from search_spaces import get_space
from supernets import create_supernet
from supernets.testing import enliven

pytestmark = pytest.mark.tvm
ARCH = get_space("tiny_mbv3").sample(np.random.default_rng(3))


@pytest.fixture(scope="module")
def supernet():
    net = create_supernet("tiny_mbv3", seed=0)
    enliven(net, ARCH, seed=1)
    return net


def _export(supernet, tmp_path, device, **kwargs):
    return export_subnet(supernet, ARCH, tmp_path / "out", formats="onnx,tvm", device=device, warmup=1, repeats=3,
                         **kwargs)


def test_mcu_export_is_c_source_checked_on_this_host_with_estimates(supernet, tmp_path):
    report = _export(supernet, tmp_path, "stm32f746")
    tvm = report.formats["tvm"]
    assert tvm["file"] == "model_stm32f746.tar" and tvm["target"] == "c" and tvm["verified"] is True
    assert tvm["parity"]["max_abs_diff"] <= tvm["parity"]["tolerance"] and tvm["parity"]["output_max_abs"] > 1e-2
    with tarfile.open(tmp_path / "out" / tvm["file"]) as tar:
        assert "lib0.c" in tar.getnames()
    assert "latency_ms" not in tvm and "not this host" in report.formats["onnx"]["latency_note"]
    estimated = report.estimated
    assert estimated["peak_sram_kb"]["source"] == "estimated" and estimated["peak_sram_kb"]["profile"] == "stm32f746@1"
    assert estimated["latency_ms"]["value"] > 0


def test_board_without_cross_compiler_gets_object_files_marked_unverified(supernet, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no aarch64-linux-gnu-g++ here (Debian puts it in /usr/bin)
    import shutil

    if shutil.which("aarch64-linux-gnu-g++"):
        pytest.skip("a cross compiler is installed: the .so path is tested over RPC instead")
    report = _export(supernet, tmp_path, "rpi4")
    tvm = report.formats["tvm"]
    assert tvm["file"] == "model_rpi4.tar" and tvm["verified"] is False
    assert "no cross compiler aarch64-linux-gnu-g++" in tvm["reason"]
    assert "parity" not in tvm and "latency_ms" not in tvm


def test_board_over_rpc_is_verified_and_measured_there(supernet, tmp_path):
    from kernels.tvm.rpc import LoopbackRpc

    board = tmp_path / "board.toml"
    board.write_text('name = "board"\nversion = "1"\nkind = "cpu"\ndescription = "loopback board"\n'
                     '[cpu]\nbackend = "tvm"\nthreads = 1\nrpc_key = "hwnas-export-board"\n')
    with LoopbackRpc(key="hwnas-export-board") as rpc:
        report = _export(supernet, tmp_path, str(board), rpc_tracker=f"127.0.0.1:{rpc.tracker_port}")
    tvm = report.formats["tvm"]
    assert tvm["file"] == "model_board.so" and tvm["verified"] is True, tvm.get("reason")
    assert "TVM RPC" in tvm["parity"]["runtime"] and tvm["parity"]["max_abs_diff"] <= tvm["parity"]["tolerance"]
    assert tvm["latency_ms"]["source"] == "measured" and tvm["latency_ms"]["profile"].startswith("board@1+file:")


def test_gpu_export_builds_cuda_and_says_why_it_did_not_run(supernet, tmp_path):
    from kernels.cuda import cuda_unavailable_reason
    from kernels.tvm.targets import nvcc_missing_reason

    if nvcc_missing_reason():
        pytest.skip(nvcc_missing_reason())
    report = _export(supernet, tmp_path, "h100")
    tvm = report.formats["tvm"]
    assert tvm["file"] == "model_h100.so" and tvm["target"] == "cuda"
    if cuda_unavailable_reason():
        assert tvm["verified"] is False and "built for sm_90, not run" in tvm["reason"]
    assert report.estimated["latency_ms"]["source"] == "estimated"


def test_fpga_profile_is_refused_with_one_line(tmp_path, capsys):
    with pytest.raises(ExportError, match="no TVM target"):
        export_subnet(create_supernet("tiny_mbv3", seed=0), ARCH, tmp_path / "x", device="zcu104")
    assert not (tmp_path / "x").exists()
    code = main(["export", "--space", "tiny_mbv3", "--arch", ARCH.to_json(), "--device", "zcu104",
                 "--out", str(tmp_path / "y")])
    assert code == 2 and "no TVM target" in capsys.readouterr().err

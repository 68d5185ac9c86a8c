"""Profiles → TVM targets, TVM-measured latency on this host and on a board over (loopback) RPC."""

from __future__ import annotations

import json

import pytest

from hw_profiles import get_profile
from hw_profiles.measured import MeasuredCostModel, MeasurementFailedError
from hw_profiles.profile import ProfileError, parse_profile
from hw_profiles.targets import NoTvmTargetError, rpc_endpoint, tvm_target_spec
from hw_profiles.tvm_measured import RemoteBoardError, TvmMeasuredCostModel, measured_model_for
from search_spaces import get_space
from supernets import create_supernet

SPACE = get_space("tiny_mbv3")


def _board(tmp_path, **cpu) -> str:
    """A cpu profile file for this host with the given [cpu] keys; returns its path."""
    lines = ['name = "board"', 'version = "1"', 'kind = "cpu"', 'description = "test board"', "[cpu]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in cpu.items()]
    path = tmp_path / "board.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _model_kwargs():
    supernet = create_supernet("tiny_mbv3", seed=0)
    return dict(build=supernet.extract, input_shape=lambda a: (1, *SPACE.input_shape(a)), warmup=1, repeats=3)


def test_each_profile_kind_maps_to_its_tvm_target():
    assert tvm_target_spec(get_profile("host-cpu")).is_host
    rpi = tvm_target_spec(get_profile("rpi4"))
    assert (rpi.mtriple, rpi.mcpu, rpi.mattr, rpi.threads) == ("aarch64-linux-gnu", "cortex-a72", ("+neon",), 4)
    assert tvm_target_spec(get_profile("h100")).arch == "sm_90"
    assert tvm_target_spec(get_profile("a100")).arch == "sm_80"
    assert tvm_target_spec(get_profile("stm32f746")).kind == "c"
    with pytest.raises(NoTvmTargetError, match="zcu104@2 is an fpga profile"):
        tvm_target_spec(get_profile("zcu104"))


def test_a_gpu_profile_without_cuda_arch_cannot_build():
    blob = {"name": "g", "version": "1", "kind": "gpu", "description": "d",
            "gpu": {"peak_flops": {"fp16": 1e12}, "memory_bandwidth_bytes_per_s": 1e11, "launch_overhead_s": 1e-6,
                    "compute_efficiency": 0.5, "memory_efficiency": 0.5}}
    with pytest.raises(ProfileError, match="cuda_arch"):
        tvm_target_spec(parse_profile(blob, source="g.toml"))


def test_rpc_endpoint_comes_from_the_profile_and_can_be_overridden(monkeypatch):
    monkeypatch.delenv("HWNAS_RPC_TRACKER", raising=False)
    assert rpc_endpoint(get_profile("host-cpu")) is None
    assert str(rpc_endpoint(get_profile("rpi4"))) == "rpi4@127.0.0.1:9190"
    assert str(rpc_endpoint(get_profile("rpi4"), tracker="10.0.0.5:9000")) == "rpi4@10.0.0.5:9000"
    monkeypatch.setenv("HWNAS_RPC_TRACKER", "board-host:9191")
    assert str(rpc_endpoint(get_profile("rpi4"))) == "rpi4@board-host:9191"
    with pytest.raises(ProfileError, match="rpi4@1: .*HOST:PORT"):
        rpc_endpoint(get_profile("rpi4"), tracker="no-port")


def test_nas_profile_with_a_bad_tracker_is_one_line_and_writes_nothing(tmp_path, capsys):
    from nas.cli import main

    out = tmp_path / "model"
    assert main(["profile", "--device", "rpi4", "--space", "tiny_mbv3", "--rpc-tracker", "no-port",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tracker must be HOST:PORT" in err
    assert not out.exists()


def test_a_board_without_rpc_key_is_refused_not_timed_here(tmp_path):
    profile = get_profile(_board(tmp_path, mtriple="aarch64-linux-gnu", backend="tvm"))
    with pytest.raises(RemoteBoardError, match="measured over TVM RPC"):
        measured_model_for(profile, **_model_kwargs())


def test_measured_model_for_picks_by_profile():
    kwargs = _model_kwargs()
    assert type(measured_model_for(get_profile("host-cpu"), **kwargs)) is MeasuredCostModel
    board = measured_model_for(get_profile("rpi4"), **kwargs)
    assert isinstance(board, TvmMeasuredCostModel) and board.backend == "tvm-rpc"


@pytest.mark.tvm
def test_tvm_latency_on_this_host_is_measured_with_provenance():
    model = TvmMeasuredCostModel(get_profile("host-cpu"), **_model_kwargs())
    metrics = model.measure(SPACE.smallest())
    assert set(metrics) == {"tvm_latency_ms"}  # host-cpu's own backend is onnxruntime
    m = metrics["tvm_latency_ms"]
    assert m.source == "measured" and m.profile == "host-cpu@1" and m.value > 0 and m.spread is not None


@pytest.mark.tvm
def test_an_unreachable_board_fails_with_a_clear_error(tmp_path):
    profile = get_profile(_board(tmp_path, backend="tvm", rpc_key="nobody", rpc_tracker="127.0.0.1:1"))
    model = measured_model_for(profile, **_model_kwargs())
    with pytest.raises(MeasurementFailedError, match=r"over RPC \(nobody@127.0.0.1:1\)"):
        model.measure(SPACE.smallest())


@pytest.fixture(scope="module")
def loopback():
    pytest.importorskip("tvm")
    from kernels.tvm.rpc import LoopbackRpc

    with LoopbackRpc(key="hwnas-board") as rpc:
        yield rpc


@pytest.mark.tvm
def test_a_board_profile_is_measured_over_rpc(loopback, tmp_path):
    profile = get_profile(_board(tmp_path, backend="tvm", threads=1, rpc_key="hwnas-board"))
    model = measured_model_for(profile, rpc_tracker=f"127.0.0.1:{loopback.tracker_port}", **_model_kwargs())
    metrics = model.measure(SPACE.smallest())
    assert set(metrics) == {"latency_ms", "tvm_latency_ms"}
    assert metrics["latency_ms"].source == "measured" and metrics["latency_ms"].value > 0

"""`nas export --quantize`: model.int8.onnx beside the float files with its report section (sizes, latency taking
turns, accuracy or why not, parity), the policy carried into arch.json and an MCU build, what TVM does with the
QDQ model, and bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _never_slower import assert_never_slower

import nas
from kernels.errors import KernelError
from nas.cli import main
from nas.export._int8 import Int8Report
from nas.export._int8_tvm import FLOAT_QDQ, INT8_DB, SCHEDULE, TUNED_SCHEDULE, relax_compute_ops
from nas.export.subnet import ExportResult, export_subnet
from search_spaces import QuantPolicy, get_space
from supernets import create_supernet
from supernets.testing import enliven

QSPACE = get_space("tiny_mbv3+q")
NET = get_space("tiny_mbv3").sample(np.random.default_rng(3))
FP32_BLOCKS = ("block0", "classifier")


def _qarch(fp32=FP32_BLOCKS, network=NET, **scheme):
    policy = QuantPolicy({label: "fp32" if label in fp32 else "int8" for label in QSPACE.labels}, **scheme)
    return QSPACE.combine(network, policy)


@pytest.fixture(scope="module")
def supernet():
    net = create_supernet("tiny_mbv3", seed=0)
    enliven(net, NET, seed=1)
    return net


def _left(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nas export: error: "), err
    return err[0]


def test_cli_int8_of_a_random_init_subnet_sits_beside_model_onnx(tmp_path, capsys):
    out = tmp_path / "int8"
    assert main(["export", "--space", "tiny_mbv3", "--arch", NET.to_json(), "--format", "onnx", "--quantize", "int8",
                 "--calibration-samples", "32", "--out", str(out), "--quiet", "--repeats", "3"]) == 0
    printed = capsys.readouterr().out
    assert _left(out) == ["arch.json", "model.int8.onnx", "model.onnx", "report.json"]
    assert "model.int8.onnx" in printed and "top-1: not available: random-init" in printed
    report = json.loads((out / "report.json").read_text())
    int8 = report["int8"]
    assert int8["verified"] is True and int8["quantize"] == "int8" and int8["policy"]["format"] == "int8"
    assert int8["network_arch_id"] == NET.arch_id == report["network_arch_id"] and report["space"] == "tiny_mbv3+q"
    assert int8["size_bytes"]["ratio"] < 0.5 and int8["size_bytes"]["int8"] == (out / "model.int8.onnx").stat().st_size
    accuracy = int8["accuracy"]
    assert accuracy["float_top1"] is None and accuracy["int8_top1"] is None and accuracy["collapsed"] is None
    assert "random-init" in accuracy["reason"]
    assert int8["calibration"] == {"method": "minmax", "samples": 32, "requested": 32,
                                   "source": int8["calibration"]["source"]} and "seeded random" in int8["calibration"]["source"]
    assert int8["nodes"]["quantized"] > 0 and int8["nodes"]["float"] == 0
    assert int8["parity"]["max_abs_diff"] <= int8["parity"]["tolerance"] and int8["parity"]["reloaded"]
    assert 0.0 <= int8["seeded_batch"]["agreement"] <= 1.0 and int8["seeded_batch"]["max_logit_diff"] > 0
    for name, precision in (("onnx", "fp32"), ("int8", "int8")):
        lat = int8["latency_ms"][name]
        assert lat["source"] == "measured" and lat["value"] > 0 and lat["precision"] == precision
    assert int8["cpu_isa"] and "tvm" not in int8
    record = ExportResult.from_json(report)
    assert isinstance(record.int8, Int8Report) and record.to_json() == report

    import onnx

    model = onnx.load(str(out / "model.int8.onnx"))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    assert any(t.data_type == onnx.TensorProto.INT8 for t in model.graph.initializer)  # int8 weights on disk
    info = json.loads((out / "arch.json").read_text())
    assert info["space"] == "tiny_mbv3+q" and info["network_arch_id"] == NET.arch_id
    assert info["quantization"]["int8_file"] == "model.int8.onnx" and info["quantization"]["policy"] == int8["policy"]
    assert QSPACE.parse(info["arch"]).arch_id == info["arch_id"] == int8["arch_id"]


def test_policy_keeps_the_fp32_blocks_float(supernet, tmp_path):
    qarch = _qarch()
    out = tmp_path / "mixed"
    report = export_subnet(supernet, qarch, out, formats="torch", quantize="policy", calibration_samples=16,
                           warmup=1, repeats=2)
    assert list(report.formats) == ["torch", "onnx"]  # --quantize implies the float ONNX beside it
    assert _left(out) == ["arch.json", "model.int8.onnx", "model.onnx", "model.pt", "report.json"]
    int8 = report.int8
    assert int8.policy["format"] == "mixed" and int8.quantize == "policy" and int8.arch_id == qarch.arch_id
    assert set(int8.recipe["fp32_scopes"]) == {"blocks.0", "classifier"}
    floats = int8.nodes["float_names"]
    assert floats and all(n.startswith(("/blocks/blocks.0/", "/classifier/")) for n in floats)
    assert any(n.startswith("/classifier/") for n in floats) and int8.nodes["quantized"] > 0
    assert report.arch_id == qarch.arch_id and report.network_arch_id == QSPACE.network(qarch).arch_id
    x = torch.randn(supernet.input_shape(NET), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(nas.load_subnet(out)(x), supernet.extract(NET).eval()(x))


def test_a_quantized_arch_without_quantize_exports_its_network_and_records_the_policy(supernet, tmp_path):
    qarch = _qarch()
    report = export_subnet(supernet, qarch, tmp_path / "f", formats="torch", warmup=0, repeats=1)
    assert _left(tmp_path / "f") == ["arch.json", "model.pt", "report.json"] and report.int8 is None
    info = json.loads((tmp_path / "f" / "arch.json").read_text())
    assert info["quantization"]["int8_file"] is None and info["quantization"]["policy"]["format"] == "mixed"
    assert info["arch_id"] == qarch.arch_id and info["network_arch_id"] == NET.arch_id
    assert "int8" not in report.to_json()


@pytest.mark.parametrize("case", ["policy-on-plain", "unknown-mode", "samples-0", "method", "all-fp32",
                                  "no-quantize"])
def test_bad_quantize_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    out = tmp_path / "out"
    arch, space, extra = NET.to_json(), "tiny_mbv3", ["--quantize", "int8"]
    if case == "policy-on-plain":
        extra = ["--quantize", "policy"]
    elif case == "unknown-mode":
        extra = ["--quantize", "int4"]
    elif case == "samples-0":
        extra += ["--calibration-samples", "0"]
    elif case == "method":
        extra += ["--calibration-method", "median"]
    elif case == "no-quantize":
        extra = ["--calibration-samples", "64"]
    else:
        arch, space, extra = _qarch(fp32=QSPACE.labels).to_json(), "tiny_mbv3+q", ["--quantize"]
    assert main(["export", "--space", space, "--arch", arch, "--format", "onnx", "--out", str(out), *extra]) == 2
    line = _one_error_line(capsys)
    expected = {"policy-on-plain": "--space tiny_mbv3+q", "unknown-mode": "--quantize 'int4'",
                "samples-0": "--calibration-samples", "method": "calibration method 'median'",
                "all-fp32": "keeps every block in fp32", "no-quantize": "add --quantize"}[case]
    assert expected in line, line
    assert _left(tmp_path) == []


def test_a_failing_quantization_names_its_step_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import kernels.quantize

    def broken(*args, **kwargs):
        raise KernelError("int8 quantization failed at quantize_static (minmax calibration): boom")

    monkeypatch.setattr(kernels.quantize, "quantize_module", broken)
    out = tmp_path / "a" / "out"
    assert main(["export", "--space", "tiny_mbv3", "--arch", NET.to_json(), "--format", "onnx", "--quantize", "int8",
                 "--out", str(out), "--quiet"]) == 2
    assert "int8 quantization failed at quantize_static (minmax calibration): boom" in _one_error_line(capsys)
    assert _left(tmp_path) == []


def test_relax_compute_ops_reads_the_dtypes_conv_and_matmul_run_in():
    head = 'def main(input: R.Tensor((1, 3, 8, 8), dtype="float32")) -> R.Tensor((1, 4), dtype="float32"):\n'
    qdq = head + "\n".join([
        '    lv: R.Tensor((1, 3, 8, 8), dtype="int8") = R.quantize(input, R.const(0.1, "float32"), '
        'R.const(0, "int8"), out_dtype="int8", axis=1)',
        '    lv1: R.Tensor((1, 3, 8, 8), dtype="float32") = R.dequantize(lv, R.const(0.1, "float32"), '
        'R.const(0, "int8"), out_dtype="float32", axis=1)',
        '    lv2: R.Tensor((4, 3, 3, 3), dtype="float32") = R.dequantize(metadata["ir.GenericConst"][0], '
        'metadata["ir.GenericConst"][1], metadata["ir.GenericConst"][2], out_dtype="float32", axis=0)',
        '    lv3: R.Tensor((1, 4, 8, 8), dtype="float32") = R.nn.conv2d(lv1, lv2, strides=[1, 1], out_dtype=None)'])
    found = relax_compute_ops(qdq)
    assert found["computes_in"] == FLOAT_QDQ and found["quantize"] == 1 and found["dequantize"] == 2
    assert found["ops"] == {"nn.conv2d": {"float32,float32->float32": 1}} and found["integer_ops"] == 0
    native = head + ('    lv: R.Tensor((1, 3, 8, 8), dtype="int8") = R.quantize(input, R.const(0.1, "float32"), '
                     'R.const(0, "int8"), out_dtype="int8", axis=1)\n'
                     '    lv1: R.Tensor((1, 4, 8, 8), dtype="int32") = R.nn.conv2d(lv, metadata["relax.expr.Constant"][0], '
                     'out_dtype="int32")\n')
    assert relax_compute_ops(native)["computes_in"] == "int8"
    assert relax_compute_ops(native + qdq.split("\n", 1)[1])["computes_in"].startswith("mixed (1 of 2")
    assert relax_compute_ops(head)["computes_in"].startswith("unknown")


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


@pytest.mark.slow
def test_a_trained_checkpoint_reports_float_vs_int8_top1(checkpoint, tmp_path, capsys):
    from nas.training.evaluation import CheckpointEvaluator

    net = get_space("tiny_mbv3").smallest()
    out = tmp_path / "ckpt"
    assert main(["export", "--checkpoint", str(checkpoint), "--arch", net.to_json(), "--format", "onnx",
                 "--quantize", "int8", "--calibration-samples", "32", "--out", str(out), "--quiet",
                 "--repeats", "2"]) == 0
    assert "top-1 int8" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    accuracy, calibration = report["int8"]["accuracy"], report["int8"]["calibration"]
    assert report["weights"] == "checkpoint" and "training split" in calibration["source"] and calibration["samples"] == 32
    assert accuracy["split"] == "validation" and accuracy["n"] > 0 and "reason" not in accuracy
    assert 0.0 <= accuracy["int8_top1"] <= 1.0 and 0.0 <= accuracy["agreement"] <= 1.0
    assert accuracy["collapsed"] == (accuracy["float_top1"] - accuracy["int8_top1"] > accuracy["collapse_drop"])
    # the float figure is `nas eval`'s for the same subnet (same BN recalibration, same images)
    assert accuracy["float_top1"] == CheckpointEvaluator(checkpoint)(net).top1


@pytest.mark.slow
def test_a_trial_of_a_quantized_job_exports_with_its_policy_and_checkpoint(checkpoint, tmp_path):
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    config = tmp_path / "q.toml"
    config.write_text(f'[search]\nspace = "tiny_mbv3+q"\nalgorithm = "random"\nbudget = 2\nseed = 1\njob = "q"\n'
                      f'storage = "{storage}"\n[accuracy]\ncheckpoint = "{checkpoint}"\n'
                      '[quantization]\nsamples = 24\nsequential_baseline = false\n'
                      '[[objectives]]\nname = "acc"\nmetric = "accuracy"\ndirection = "maximize"\n'
                      '[[objectives]]\nname = "macs"\nmetric = "macs"\n')
    assert main(["search", str(config), "--no-progress"]) == 0
    trial = nas.load_job("q", storage=storage).arch(0)
    out = tmp_path / "trial0"
    assert main(["export", "--job", "q", "--trial", "0", "--storage", storage, "--format", "onnx", "--quantize",
                 "policy", "--out", str(out), "--quiet", "--repeats", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["weights"] == "checkpoint" and report["arch_id"] == trial.arch_id  # the job's own checkpoint
    assert report["int8"]["policy"] == QSPACE.policy(trial).to_dict()
    assert report["int8"]["calibration"]["samples"] == 24  # the job's [quantization] settings
    assert report["int8"]["accuracy"]["int8_top1"] is not None


@pytest.mark.tvm
@pytest.mark.slow
def test_tune_minutes_tunes_the_int8_build_too_and_keeps_it_never_slower(supernet, tmp_path):
    db = tmp_path / "db"
    report = export_subnet(supernet, _qarch(fp32=()), tmp_path / "out", formats="onnx,tvm", quantize="policy",
                           calibration_samples=32, warmup=1, repeats=5, tune_minutes=0.5, tuning_db=db)
    tvm = report.int8.tvm
    assert tvm["verified"] is True, tvm.get("reason")
    tuning, float_tuning = tvm["tuning"], report.formats["tvm"]["tuning"]
    # the int8 file's own database, beside the space's: its tasks carry this file's quantization scales
    assert float_tuning["db"] == str(db) and tuning["db"] == str(db / INT8_DB / report.int8.sha256[:16])
    assert tuning["minutes_tuned"] > 0 and tuning["trials"] > 0 and float_tuning["minutes_tuned"] > 0
    assert "error" not in tuning
    assert_never_slower(tvm["tvm_schedule"], tuning)
    assert (tvm["schedule"] == TUNED_SCHEDULE) == (tvm["tvm_schedule"] == "metaschedule-db")
    from kernels.tvm.build import host_target
    from kernels.tvm.pointwise import has_vnni

    assert (tvm["vnni_pointwise_functions"] > 0) == has_vnni(host_target(1))  # counted on the chosen build
    from nas.export._int8 import summary_lines

    tvm_line = next(line for line in summary_lines(report.int8) if line.strip().startswith("tvm:"))
    timed = tuning["selection"]["tuned_ms"] is not None  # both builds were timed whole when a record was kept
    assert (f"schedule {tvm['tvm_schedule']} (tuned " in tvm_line) == timed, tvm_line
    assert tvm["latency_ms"]["tvm_int8"]["source"] == "measured"


@pytest.mark.tvm
def test_a_failed_int8_tuning_is_reported_and_the_check_goes_on(supernet, tmp_path):
    import fcntl

    from kernels.quantize import quantize_module
    from kernels.runners import OrtFileRunner
    from nas.export._formats import TvmTuning
    from nas.export._int8_tvm import check_tvm_int8

    module = supernet.extract(NET).eval()
    shape = (1, *get_space("tiny_mbv3").input_shape(NET))
    calibration = np.random.default_rng(0).standard_normal((8, *shape[1:])).astype(np.float32)
    q = quantize_module(module, torch.zeros(shape), tmp_path / "q.onnx", calibration)  # dynamic batch, as exported
    x = calibration[:1]
    db = tmp_path / "db"
    db.mkdir()
    with open(db / ".tune.lock", "w") as held:  # another process tuning this database (kernels.tvm.tune)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        entry = check_tvm_int8(q, x, ort_int8=OrtFileRunner(q.path, x, threads=1), threads=1, warmup=1, repeats=2,
                               profile="host-cpu@1", tuning=TvmTuning(db=db, minutes=0.1))
    assert entry["verified"] is True, entry.get("reason")
    assert "being tuned by another process" in entry["tuning"]["error"] and entry["tuning"]["minutes_tuned"] == 0.0
    assert entry["tvm_schedule"] == "default" and entry["schedule"] == SCHEDULE
    assert entry["parity"]["agreement"] >= 0.9 and entry["latency_ms"]["tvm_int8"]["source"] == "measured"


@pytest.mark.tvm
@pytest.mark.slow
def test_tvm_builds_the_int8_model_in_integer_compute(supernet, tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))  # no tuning database: the default schedule
    report = export_subnet(supernet, _qarch(fp32=()), tmp_path / "tvm", formats="onnx,tvm", quantize="policy",
                           calibration_samples=32, warmup=1, repeats=5)
    assert _left(tmp_path / "tvm") == ["arch.json", "model.int8.onnx", "model.onnx", "model.so", "report.json"]
    tvm = report.int8.tvm
    assert tvm["verified"] is True, tvm.get("reason")
    # every quantized conv and Gemm computes on integers (kernels.tvm.int8); activations keep their Q/DQ pairs
    assert tvm["computes_in"] == "int8" and tvm["relax"]["integer_ops"] == report.int8.nodes["quantized"]
    assert tvm["relax"]["compute_ops"] == report.int8.nodes["quantized"] and tvm["relax"]["dequantize"] > 0
    from kernels.tvm.build import host_target
    from kernels.tvm.pointwise import has_vnni

    assert (tvm["vnni_pointwise_functions"] > 0) == has_vnni(host_target(1))  # pointwise convs on vpdpbusd
    assert tvm["tvm_schedule"] == "default" and tvm["schedule"] == SCHEDULE
    assert tvm["tuning"]["minutes_tuned"] == 0 and tvm["tuning"]["tasks_hit"] == 0 and "selection" not in tvm["tuning"]
    from nas.export._int8 import summary_lines

    tvm_line = next(line for line in summary_lines(report.int8) if line.strip().startswith("tvm:"))
    assert ("pointwise convs on AVX-512 VNNI" in tvm_line) == has_vnni(host_target(1)), tvm_line
    parity = tvm["parity"]
    assert parity["max_abs_diff"] <= parity["tolerance"] and parity["agreement"] >= 0.9 and parity["n"] == 16
    assert {"tvm", "tvm_int8"} == set(tvm["latency_ms"]) and tvm["latency_ms"]["tvm_int8"]["source"] == "measured"
    assert tvm["latency_ms"]["tvm_int8"]["precision"] == "int8" and tvm["latency_ms"]["tvm"]["precision"] == "fp32"


@pytest.mark.tvm
@pytest.mark.slow
def test_an_mcu_export_carries_the_int8_policy(supernet, tmp_path):
    from hw_profiles import cost_model_for, get_profile

    qarch = _qarch()
    report = export_subnet(supernet, qarch, tmp_path / "mcu", formats="tvm", device="stm32f746", quantize="policy",
                           calibration_samples=16, warmup=1, repeats=2)
    carried = report.formats["tvm"]["quantization"]
    assert carried["policy"] == QSPACE.policy(qarch).to_dict() and carried["int8_file"] == "model.int8.onnx"
    assert report.formats["tvm"]["verified"] is True and "float network" in carried["note"]
    assert "not this host" in report.int8.latency_note and report.int8.latency_ms is None
    assert report.int8.tvm["verified"] is False and "this host only" in report.int8.tvm["reason"]
    expected = cost_model_for(get_profile("stm32f746")).metrics(QSPACE.layers(qarch))
    assert report.estimated == {k: m.to_dict() for k, m in expected.items()}  # estimates follow the policy

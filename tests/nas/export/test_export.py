"""`nas export`: torch/ONNX/TVM files of one subnet, parity-checked after reloading, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nas
from kernels.errors import KernelError
from nas.cli import main
from nas.export.subnet import ExportError, ExportResult, check_tune_minutes, export_subnet, load_subnet, parse_formats
from search_spaces import get_space
from supernets import create_supernet
from supernets.testing import enliven


def _arch(seed: int = 0):
    return get_space("tiny_mbv3").sample(np.random.default_rng(seed))


def _lively(arch):
    supernet = create_supernet("tiny_mbv3", seed=0)
    enliven(supernet, arch, seed=1)
    return supernet


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("nas export: error: ")
    return err[0]


def _left(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_torch_and_onnx_export_with_parity_and_round_trip(tmp_path):
    arch = _arch()
    supernet = _lively(arch)
    out = tmp_path / "deep" / "er" / "sub"
    report = export_subnet(supernet, arch, out, formats="onnx,torch", warmup=1, repeats=3)
    assert _left(out) == ["arch.json", "model.onnx", "model.pt", "report.json"]
    assert json.loads((out / "report.json").read_text()) == report.to_json()
    assert _left(out.parent) == ["sub"]  # no temp folder left beside it
    info = json.loads((out / "arch.json").read_text())
    assert info["arch_id"] == arch.arch_id and info["space"] == "tiny_mbv3" and info["space_version"] == "1"
    assert get_space("tiny_mbv3").parse(info["arch"]) == arch and info["checkpoint_sha256"] is None
    assert list(report.formats) == ["torch", "onnx"]
    onnx = report.formats["onnx"]
    assert onnx["parity"]["output_max_abs"] > 1e-2  # outputs with signal, so parity means something
    assert onnx["parity"]["max_abs_diff"] < 1e-4 * max(1.0, onnx["parity"]["output_max_abs"])
    assert report.formats["torch"]["parity"]["max_abs_diff"] == 0.0
    for entry in report.formats.values():
        lat = entry["latency_ms"]
        assert lat["source"] == "measured" and lat["profile"] == "host-cpu@1" and lat["value"] > 0
        assert lat["spread"] >= 0
    assert set(report.steps_s) >= {"extract_s", "torch_s", "onnx_s", "latency_s", "total_s"}
    assert ExportResult.from_json(report.to_json()) == report
    assert "tvm_schedule" not in report.to_json() and report.tvm_schedule is None  # no TVM build on this host

    module = nas.load_subnet(out)
    assert not module.training
    expected = supernet.extract(arch).eval()
    gen = torch.Generator().manual_seed(5)
    x1, x2 = (torch.randn(supernet.input_shape(arch, 2), generator=gen) for _ in range(2))
    with torch.no_grad():
        y1, y2 = module(x1), module(x2)
        assert torch.equal(y1, expected(x1)) and torch.equal(y2, expected(x2))
    assert (y1 - y2).abs().max() > 1e-2 * y1.abs().max()  # different inputs, clearly different outputs

    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"] and [o.name for o in session.get_outputs()] == ["logits"]


def test_dynamic_batch_onnx_runs_other_batch_sizes(tmp_path):
    arch = _arch(1)
    report = export_subnet(_lively(arch), arch, tmp_path / "dyn", formats=["onnx"], dynamic_batch=True,
                           warmup=1, repeats=2)
    parity = report.formats["onnx"]["parity_batch3"]
    assert report.dynamic_batch and parity["output_max_abs"] > 1e-2
    assert parity["max_abs_diff"] < 1e-4 * max(1.0, parity["output_max_abs"]), parity


def test_load_subnet_refuses_foreign_or_missing_files(tmp_path):
    with pytest.raises(ExportError, match="arch.json"):
        load_subnet(tmp_path)
    arch = _arch()
    out = tmp_path / "x"
    export_subnet(_lively(arch), arch, out, formats="torch", warmup=1, repeats=1)
    (out / "model.pt").write_bytes(b"not a state dict")
    with pytest.raises(ExportError, match="cannot load"):
        load_subnet(out)


def test_export_result_files_are_checked_on_load():
    with pytest.raises(ExportError, match=r"missing keys \['format_version'"):
        ExportResult.from_json({"space": "tiny_mbv3"})
    with pytest.raises(ExportError, match="JSON object"):
        ExportResult.from_json([1, 2])


def test_tune_minutes_must_be_a_finite_number_at_least_zero():
    assert check_tune_minutes(0) == 0.0 and check_tune_minutes(1.5) == 1.5
    for bad in (-1, float("inf"), float("nan"), True, "2"):
        with pytest.raises(ExportError, match="--tune-minutes"):
            check_tune_minutes(bad)


def test_timing_leaves_the_denormal_setting_as_it_was(tmp_path):
    def flushing() -> bool:
        return torch.tensor([1e-40], dtype=torch.float32).item() == 0.0

    was = flushing()
    torch.set_flush_denormal(False)
    try:
        arch = _arch()
        export_subnet(_lively(arch), arch, tmp_path / "d", formats="torch", warmup=0, repeats=1)
        assert not flushing()
    finally:
        torch.set_flush_denormal(was)


def test_parse_formats():
    assert parse_formats("tvm, torch") == ("torch", "tvm")
    for bad in ("", "torch,keras", "pt"):
        with pytest.raises(ExportError, match="--format"):
            parse_formats(bad)


@pytest.mark.tvm
@pytest.mark.slow
def test_tvm_export_reloads_with_parity(tmp_path):
    from kernels.runners import TvmLibraryRunner

    arch = _arch(2)
    supernet = _lively(arch)
    out = tmp_path / "tvm"
    report = export_subnet(supernet, arch, out, formats="tvm", warmup=1, repeats=3)
    assert _left(out) == ["arch.json", "model.so", "report.json"]
    tvm = report.formats["tvm"]
    assert tvm["parity"]["reloaded"] and tvm["parity"]["output_max_abs"] > 1e-2
    assert tvm["parity"]["max_abs_diff"] < 1e-3 * max(1.0, tvm["parity"]["output_max_abs"])
    assert tvm["latency_ms"]["source"] == "measured" and "untuned" in tvm["schedule"]
    x = torch.randn(supernet.input_shape(arch), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = supernet.extract(arch).eval()(x).numpy()
    got = TvmLibraryRunner(out / "model.so", x.numpy(), threads=1).run(x.numpy())
    np.testing.assert_allclose(got, expected, atol=1e-3 * max(1.0, float(np.abs(expected).max())))


def test_cli_export_from_arch_with_random_init(tmp_path, capsys):
    arch = _arch(3)
    out = tmp_path / "cli"
    assert main(["export", "--space", "tiny_mbv3", "--arch", arch.to_json(), "--format", "torch,onnx",
                 "--out", str(out), "--quiet", "--repeats", "2"]) == 0
    printed = capsys.readouterr().out
    assert "model.onnx" in printed and "random-init" in printed and "latency ms" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["weights"] == "random-init" and "random inputs" in report["bn_statistics"]
    assert report["formats"]["onnx"]["parity"]["output_max_abs"] > 1e-2


@pytest.mark.parametrize("case", ["nonempty", "format", "json", "no-space", "no-source"])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    arch_json = _arch().to_json()
    out = tmp_path / "out"
    argv = ["export", "--space", "tiny_mbv3", "--arch", arch_json, "--format", "torch", "--out", str(out)]
    if case == "nonempty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "format":
        argv[argv.index("torch")] = "torch,keras"
    elif case == "json":
        argv[argv.index(arch_json)] = "{not json"
    elif case == "no-space":
        argv.remove("--space")
        argv.remove("tiny_mbv3")
    else:
        argv = ["export", "--out", str(out)]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    expected = {"nonempty": "not empty", "format": "keras", "json": "not valid JSON", "no-space": "--space",
                "no-source": "--job"}[case]
    assert expected in line
    assert _left(tmp_path) == (["out"] if case == "nonempty" else [])
    if case == "nonempty":
        assert _left(out) == ["keep.txt"]


def test_a_failing_step_names_itself_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import kernels.onnx_export

    def broken(*args, **kwargs):
        raise KernelError("ONNX export failed: torchscript exporter: boom")

    monkeypatch.setattr(kernels.onnx_export, "export_onnx", broken)
    out = tmp_path / "a" / "out"
    assert main(["export", "--space", "tiny_mbv3", "--arch", _arch().to_json(), "--format", "torch,onnx",
                 "--out", str(out), "--quiet"]) == 2
    assert "ONNX export failed: torchscript exporter: boom" in _one_error_line(capsys)
    assert _left(tmp_path) == []


def test_cli_export_of_a_search_trial(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/nas.db"
    result = nas.search(get_space("tiny_mbv3"), [nas.Objective("macs", "macs"),
                                                 nas.Objective("sram", "stm32f746.peak_sram_kb")],
                        budget=4, storage=storage, job="j", progress=False)
    out = tmp_path / "trial0"
    assert main(["export", "--job", "j", "--trial", "0", "--storage", storage, "--format", "torch",
                 "--out", str(out), "--quiet", "--repeats", "1"]) == 0
    info = json.loads((out / "arch.json").read_text())
    assert info["arch_id"] == result.arch(0).arch_id
    with torch.no_grad():
        y = nas.load_subnet(out)(torch.randn(get_space("tiny_mbv3").input_shape(result.arch(0))).unsqueeze(0))
    assert y.shape == (1, 10)
    capsys.readouterr()
    assert main(["export", "--job", "j", "--trial", "99", "--storage", storage, "--format", "torch",
                 "--out", str(tmp_path / "missing")]) == 2
    assert "no trial 99" in _one_error_line(capsys)
    assert not (tmp_path / "missing").exists()


@pytest.mark.slow
def test_cli_export_from_a_trained_checkpoint(tmp_path, capsys):
    from supernets.checkpoint import load_checkpoint

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "32",
                 "--no-progress"]) == 0
    arch = json.dumps({"ks": [3] * 15, "e": [3] * 15, "d": [1] * 5, "r": 28})
    out = tmp_path / "exp"
    assert main(["export", "--checkpoint", str(run), "--arch", arch, "--format", "torch,onnx", "--out", str(out),
                 "--quiet", "--repeats", "2"]) == 0  # --space defaults to the checkpoint's
    report = json.loads((out / "report.json").read_text())
    assert report["weights"] == "checkpoint" and report["space"] == "tiny_mbv3"
    assert report["checkpoint_sha256"] == load_checkpoint(run)["sha256"]
    assert json.loads((out / "arch.json").read_text())["checkpoint_sha256"] == report["checkpoint_sha256"]
    assert "checkpoint's data" in report["bn_statistics"]
    assert report["formats"]["onnx"]["parity"]["max_abs_diff"] <= report["formats"]["onnx"]["parity"]["tolerance"]
    module = nas.load_subnet(out)
    x = torch.randn(1, *get_space("tiny_mbv3").input_shape(get_space("tiny_mbv3").parse(json.loads(arch))))
    with torch.no_grad():
        assert module(x).shape == (1, 10)


def test_latency_model_prediction_sits_beside_the_measurement(tmp_path, monkeypatch):
    from hw_profiles.metric import Metric
    from nas.profiling.latency_model import LatencyModel, LatencyModelError

    class Fake:
        backend, threads = "onnxruntime", 2

        def predict(self, archs):
            return [Metric(value=1.5, unit="ms", source="predicted", profile="host-cpu@1") for _ in archs]

    seen = []
    monkeypatch.setattr(LatencyModel, "load", classmethod(lambda cls, path, space=None: seen.append(path) or Fake()))
    arch = _arch()
    report = export_subnet(_lively(arch), arch, tmp_path / "p", formats="onnx", latency_model=tmp_path / "lm",
                           warmup=1, repeats=1)
    assert seen == [tmp_path / "lm"]
    assert report.predicted_latency_ms["value"] == 1.5 and report.predicted_latency_ms["source"] == "predicted"
    assert report.formats["onnx"]["latency_ms"]["source"] == "measured"
    monkeypatch.undo()
    with pytest.raises(LatencyModelError):
        export_subnet(_lively(arch), arch, tmp_path / "q", formats="onnx", latency_model=tmp_path / "missing")
    assert not (tmp_path / "q").exists()

"""`nas export` of a tiny_vit subnet: torch, ONNX and TVM files with parity after reloading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nas.cli import main
from nas.export.subnet import export_subnet
from search_spaces import get_space
from supernets import create_supernet
from supernets.testing import enliven


def _lively(seed: int):
    space = get_space("tiny_vit")
    arch = space.sample(np.random.default_rng(seed))
    supernet = create_supernet("tiny_vit", seed=0)
    enliven(supernet, arch, seed=1)
    return supernet, arch


def test_torch_and_onnx_export_of_a_vit_with_parity(tmp_path):
    supernet, arch = _lively(0)
    report = export_subnet(supernet, arch, tmp_path / "vit", formats="torch,onnx", warmup=1, repeats=3)
    onnx = report.formats["onnx"]["parity"]
    assert onnx["output_max_abs"] > 1e-2 and onnx["max_abs_diff"] < 1e-4 * max(1.0, onnx["output_max_abs"])
    assert report.formats["torch"]["parity"]["max_abs_diff"] == 0.0
    info = json.loads((tmp_path / "vit" / "arch.json").read_text())
    assert info["space"] == "tiny_vit" and get_space("tiny_vit").parse(info["arch"]) == arch


@pytest.mark.tvm
@pytest.mark.slow
def test_tvm_export_of_a_vit_reloads_with_parity(tmp_path):
    from kernels.runners import TvmLibraryRunner

    supernet, arch = _lively(2)
    out = tmp_path / "tvm"
    report = export_subnet(supernet, arch, out, formats="tvm", warmup=1, repeats=3)
    tvm = report.formats["tvm"]
    assert tvm["parity"]["reloaded"] and tvm["parity"]["output_max_abs"] > 1e-2
    x = torch.randn(supernet.input_shape(arch), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = supernet.extract(arch).eval()(x).numpy()
    got = TvmLibraryRunner(out / "model.so", x.numpy(), threads=1).run(x.numpy())
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


def test_cli_export_of_a_random_init_vit_says_it_has_no_batchnorm(tmp_path, capsys):
    arch = get_space("tiny_vit").sample(np.random.default_rng(3))
    out = tmp_path / "cli"
    assert main(["export", "--space", "tiny_vit", "--arch", arch.to_json(), "--format", "onnx",
                 "--out", str(out), "--quiet", "--repeats", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["weights"] == "random-init" and report["bn_statistics"] == "none: the network has no BatchNorm"
    assert report["formats"]["onnx"]["parity"]["max_abs_diff"] < 1e-4

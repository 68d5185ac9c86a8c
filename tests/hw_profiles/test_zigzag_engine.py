"""ZigZag (zigzag-dse) as an external engine beside our FPGA model: real ZigZag runs on tiny rows."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import subprocess
import sys

import pytest

from hw_profiles import zigzag_engine as zz
from hw_profiles.fpga import FpgaCostModel
from hw_profiles.profile import FpgaSpec, get_profile
from search_spaces import LayerSpec, NASError

zigzag_installed = pytest.mark.skipif(
    not any(d.metadata["Name"] == zz.ZIGZAG_ENGINE for d in importlib.metadata.distributions()),
    reason="zigzag-dse is not installed")
has_dataflow = pytest.mark.skipif("dataflow" not in {f.name for f in dataclasses.fields(FpgaSpec)},
                                  reason="FpgaSpec has no dataflow field yet")

TINY = [  # a 3-row network: stem conv, depthwise with SE, pointwise
    LayerSpec("conv", 3, 16, 3, 1, 1, (8, 8), "relu", bn=True, block="stem"),
    LayerSpec("dwconv", 16, 16, 3, 1, 16, (8, 8), "relu", se_channels=4, bn=True, block="b0"),
    LayerSpec("pwconv", 16, 16, 1, 1, 1, (8, 8), residual=True, bn=True, block="b0"),
]
COMPUTE_BOUND = [LayerSpec("pwconv", 64, 64, 1, 1, 1, (16, 16), bn=True)]  # 1 M MACs, 8 KiB of weights+input


@pytest.fixture(scope="module")
def model8():
    return FpgaCostModel(get_profile("zcu104")).with_template(pe_rows=8, pe_cols=8)


def test_import_is_lazy():
    code = "import sys, hw_profiles, hw_profiles.zigzag_engine; print(any(m.startswith('zigzag') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_split_unrolling():
    # 3x3 taps on 8 columns: 6 of them in two passes beat 9 passes of one tap (or 8 taps in two)
    factors = dict(zz.split_unrolling([("FX", 3), ("FY", 3)], 8))
    assert math.ceil(3 / factors["FX"]) * math.ceil(3 / factors["FY"]) == 2 and factors["FX"] * factors["FY"] == 6
    # 24 channels on 16 rows: two passes either way; 12 uses fewer PEs and divides evenly
    assert zz.split_unrolling([("K", 24)], 16) == [("K", 12)]
    assert zz.split_unrolling([("C", 1)], 8) == []


def test_workload_mapping():
    conv, (dw, se_reduce, se_expand), (pw,) = (zz.zigzag_ops(row, 8) for row in TINY)
    assert [conv[0].operator, dw.operator, pw.operator] == ["Conv", "Conv", "Gemm"]
    assert dict(dw.sizes)["G"] == 16 and dict(dw.sizes)["C"] == 1
    assert dict(pw.sizes) == {"D": 64, "K": 16, "C": 16}  # a 1x1 conv is a GEMM over its pixels
    assert dict(se_reduce.sizes) == {"D": 1, "K": 4, "C": 16} and dict(se_expand.sizes) == {"D": 1, "K": 16, "C": 4}
    gap = zz.zigzag_ops(LayerSpec("gap", 16, 16, 1, 1, 16, (4, 4)), 8)[0]
    assert gap.operator == "Pooling" and gap.w_bits == 0


def test_accelerator_description(model8):
    spec = model8.spec
    acc = zz.accelerator_description(spec)
    assert acc["operational_array"]["sizes"] == [8, 8]
    assert list(acc["memories"]) == ["w_reg", "o_reg", "weight_buffer", "input_buffer", "output_buffer", "dram"]
    assert acc["memories"]["weight_buffer"]["size"] == 8 * spec.weight_buffer_bytes
    dram = acc["memories"]["dram"]
    assert dram["ports"][0]["bandwidth_max"] == round(spec.ddr_bandwidth_bytes_per_s / spec.clock_hz * 8)
    assert dram["r_cost"] == pytest.approx(spec.energy_pj_per_dram_byte * dram["ports"][0]["bandwidth_max"] / 8)


@zigzag_installed
@pytest.mark.slow
def test_metrics_positive_with_provenance(model8, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written outside a temporary directory
    zz.clear_cache()
    metrics = zz.zigzag_metrics(TINY, model8.spec, profile_ref=model8.profile.ref)
    version = zz.zigzag_version()
    for name, unit in (("latency_ms", "ms"), ("energy_mj", "mJ")):
        m = metrics[name]
        assert m.value > 0 and math.isfinite(m.value) and m.unit == unit and m.source == "estimated"
        assert m.profile == f"zigzag-dse@{version}:{model8.profile.ref}" and m.precision == "int8"
    assert list(tmp_path.iterdir()) == []
    zz.clear_cache()  # deterministic: a cold rerun gives the same numbers
    again = zz.zigzag_metrics(TINY, model8.spec, profile_ref=model8.profile.ref)
    assert {k: m.value for k, m in again.items()} == {k: m.value for k, m in metrics.items()}


@zigzag_installed
def test_latency_grows_when_array_shrinks():
    base = FpgaCostModel(get_profile("zcu104"))
    latency = {}
    for side in (16, 4):
        model = base.with_template(pe_rows=side, pe_cols=side)
        latency[side] = zz.zigzag_metrics(COMPUTE_BOUND, model.spec, profile_ref=model.profile.ref)["latency_ms"].value
    # 16x fewer PEs on a compute-bound layer: close to 16x the cycles
    assert latency[4] > 8 * latency[16]


@zigzag_installed
@has_dataflow
def test_both_dataflows_run(model8):
    results = {}
    for dataflow in ("weight_stationary", "output_stationary"):
        model = model8.with_template(dataflow=dataflow)
        metrics = zz.zigzag_metrics(TINY, model.spec, profile_ref=model.profile.ref)
        assert metrics["latency_ms"].value > 0 and f"dataflow={dataflow}" in metrics["latency_ms"].profile
        results[dataflow] = metrics["latency_ms"].value
    assert results["weight_stationary"] != results["output_stationary"]


@zigzag_installed
def test_engine_failure_is_one_line_error(model8):
    tiny = model8.with_template(input_buffer_bytes=16, weight_buffer_bytes=16, output_buffer_bytes=16)
    with pytest.raises(zz.ZigZagRunError) as err:  # no loop order fits 16-byte buffers
        zz.zigzag_metrics(COMPUTE_BOUND, tiny.spec, profile_ref=tiny.profile.ref)
    assert isinstance(err.value, NASError) and "\n" not in str(err.value)


def test_missing_package_is_one_line_error(model8, monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(zz.ZigZagUnavailableError) as err:
        zz.zigzag_metrics(TINY, model8.spec, profile_ref="zcu104@2")
    assert isinstance(err.value, NASError) and isinstance(err.value, RuntimeError)
    assert "\n" not in str(err.value) and "pip install" in str(err.value)


def test_unimportable_package_is_one_line_error(model8, monkeypatch):
    monkeypatch.setattr(zz, "zigzag_version", lambda: "3.9.1")
    monkeypatch.setattr(zz, "_cache", {})
    for name in [m for m in sys.modules if m == "zigzag" or m.startswith("zigzag.")] + ["zigzag"]:
        monkeypatch.setitem(sys.modules, name, None)  # import zigzag... raises ImportError
    with pytest.raises(zz.ZigZagUnavailableError) as err:
        zz.zigzag_metrics(TINY, model8.spec, profile_ref="zcu104@2")
    assert "\n" not in str(err.value) and "pip install" in str(err.value)

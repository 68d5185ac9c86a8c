"""The FPGA template's two dataflows, its row formulas on arrays of templates, resources, and the
``[fpga]``/``[fpga.search]`` schema of a profile."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from math import ceil

import numpy as np
import pytest

from hw_profiles.fpga import FpgaCostModel, FpgaResources
from hw_profiles.fpga_rows import row_cost, template_of
from hw_profiles.fpga_space import SEARCHABLE, design_space
from hw_profiles.profile import PROFILE_DIR, FpgaSpec, Profile, ProfileError, get_profile, parse_profile
from search_spaces import LayerSpec

# 4 rows x 8 columns (unequal on purpose: a swapped rows/columns formula shows), 100 MHz, 32 B/cycle
SMALL = FpgaSpec(
    device="small", dsp_total=100, bram18k_total=40, pe_rows=4, pe_cols=8, bit_width=8, clock_hz=100e6,
    ddr_bandwidth_bytes_per_s=3.2e9, input_buffer_bytes=4096, weight_buffer_bytes=4096, output_buffer_bytes=4096,
    macs_per_dsp=2, per_layer_overhead_cycles=50.0, energy_pj_per_mac=1.0, energy_pj_per_dram_byte=100.0,
    static_power_w=0.5,
)
WS, OS = "weight_stationary", "output_stationary"


def _model(spec: FpgaSpec, **changes) -> FpgaCostModel:
    spec = dataclasses.replace(spec, **changes)
    return FpgaCostModel(Profile(name="small", version="1", kind="fpga", description="test", spec=spec))


def _compute(layer: LayerSpec, dataflow: str, spec: FpgaSpec = SMALL, **changes) -> int:
    (row,) = _model(spec, dataflow=dataflow, **changes).layer_report([layer])
    return row["compute_cycles"]


# ------------------------------------------------------------------ compute cycles by hand
# WS: rows = output channels, columns = reduction (cin_g*k^2; k^2 taps for depthwise), one pixel a cycle.
# OS: rows = output pixels, columns = output channels, the reduction (cin_g*k^2) one step a cycle.
CASES = [
    # dense 3x3 stride 2, 3 -> 16 channels, 8x8 in -> 4x4 = 16 pixels, reduction 3*9 = 27
    (LayerSpec("conv", 3, 16, 3, 2, 1, (8, 8)), 4 * 4 * 16, 2 * 4 * 27),
    # WS: ceil(16/4)=4 row tiles x ceil(27/8)=4 column tiles x 16 px; OS: ceil(16/8)=2 x ceil(16/4)=4 x 27
    # grouped 3x3 (2 groups of 4 -> 6), 4x4 = 16 pixels, reduction 4*9 = 36
    (LayerSpec("conv", 8, 12, 3, 1, 2, (4, 4)), 2 * 2 * 5 * 16, 2 * 1 * 4 * 36),
    # pwconv 20 -> 12 on 5x5 = 25 pixels: WS ceil(12/4)=3 x ceil(20/8)=3 x 25; OS ceil(12/8)=2 x ceil(25/4)=7 x 20
    (LayerSpec("pwconv", 20, 12, 1, 1, 1, (5, 5)), 3 * 3 * 25, 2 * 7 * 20),
    # depthwise 3x3 on 10 channels, 6x6 = 36 pixels: WS ceil(10/4)=3 x ceil(9/8)=2 x 36; OS ceil(10/8)=2 x ceil(36/4)=9 x 9
    (LayerSpec("dwconv", 10, 10, 3, 1, 10, (6, 6)), 3 * 2 * 36, 2 * 9 * 9),
    # the same with SE (m = 4): WS FCs ceil(4/4)*ceil(10/8) + ceil(10/4)*ceil(4/8) = 2 + 3, OS FCs
    # ceil(4/8)*10 + ceil(10/8)*4 = 18; both scale ceil(10*36/4) = 90 on the vector unit
    (LayerSpec("dwconv", 10, 10, 3, 1, 10, (6, 6), se_channels=4), 216 + 5 + 90, 162 + 18 + 90),
    # linear 50 -> 10 (one output pixel): WS ceil(10/4)=3 x ceil(50/8)=7; OS ceil(10/8)=2 x ceil(1/4)=1 x 50
    (LayerSpec("linear", 50, 10, 1, 1, 1, (1, 1)), 3 * 7, 2 * 1 * 50),
    # global average pool: ceil(10*6*6/4) on the 4-lane vector unit, whatever the dataflow
    (LayerSpec("gap", 10, 10, 1, 1, 1, (6, 6)), 90, 90),
]


@pytest.mark.parametrize("layer, ws, os_", CASES, ids=["conv", "grouped", "pwconv", "dwconv", "dwconv-se",
                                                        "linear", "gap"])
def test_compute_cycles_by_hand_under_both_dataflows(layer, ws, os_):
    assert _compute(layer, WS) == ws
    assert _compute(layer, OS) == os_
    # the array of 4 x 8 holds at most 32 MACs a cycle: a lower bound on the cycles of either mapping
    macs = layer.out_channels * (layer.in_channels // layer.groups) * layer.kernel ** 2 * layer.out_hw[0] * \
        layer.out_hw[1]
    if layer.op != "gap":
        assert min(ws, os_) >= ceil(macs / 32)


def test_wide_rows_take_passes_on_both_dataflows():
    dw = LayerSpec("dwconv", 10, 10, 3, 1, 10, (6, 6))
    for dataflow, one in ((WS, 216), (OS, 162)):
        assert _compute(dataclasses.replace(dw, precision="int8"), dataflow) == one
        assert _compute(dataclasses.replace(dw, precision="fp32"), dataflow) == 16 * one  # ceil(32/8)^2
        assert _compute(dataclasses.replace(dw, precision="fp32"), dataflow, bit_width=16) == 4 * one
        assert _compute(dataclasses.replace(dw, precision="int8"), dataflow, bit_width=16) == one
        assert _compute(dw, dataflow, bit_width=16) == one  # unset: the template's own width, one pass
    (row,) = _model(SMALL, dataflow=OS).layer_report([dataclasses.replace(dw, precision="fp32")])
    assert row["passes"] == 16


def test_os_row_cycles_are_max_of_compute_and_memory_plus_overhead():
    pw = LayerSpec("pwconv", 20, 12, 1, 1, 1, (5, 5))
    (row,) = _model(SMALL, dataflow=OS).layer_report([pw])
    # the only row: its input (500 B), weights (240 B) and output (300 B) all cross DDR at 32 B/cycle
    assert row["dram_bytes"] == 20 * 25 + 20 * 12 + 12 * 25 == 1040
    assert row["memory_cycles"] == pytest.approx(1040 / 32)
    assert row["compute_cycles"] == 280 and row["cycles"] == pytest.approx(280 + 50)
    assert row["utilisation"] == pytest.approx(20 * 12 * 25 / (280 * 32))
    ws_row, = _model(SMALL, dataflow=WS).layer_report([pw])
    assert ws_row["dram_bytes"] == row["dram_bytes"]  # the dataflow moves compute, not traffic


def test_os_beats_ws_on_depthwise_3x3_and_ws_beats_os_on_linear():
    zcu = get_profile("zcu104").spec  # 32 x 32
    assert zcu.pe_rows == zcu.pe_cols == 32
    dw = LayerSpec("dwconv", 64, 64, 3, 1, 64, (16, 16))
    # WS: ceil(64/32) x ceil(9/32) x 256 pixels, 9 of 32 lanes busy; OS: ceil(64/32) x ceil(256/32) x 9 taps
    assert _compute(dw, WS, zcu) == 2 * 1 * 256 == 512
    assert _compute(dw, OS, zcu) == 2 * 8 * 9 == 144
    fc = LayerSpec("linear", 256, 128, 1, 1, 1, (1, 1))
    # WS: ceil(128/32) x ceil(256/32); OS: one pixel on 32 rows, ceil(128/32) x 256 reduction steps
    assert _compute(fc, WS, zcu) == 4 * 8 == 32
    assert _compute(fc, OS, zcu) == 4 * 1 * 256 == 1024
    ws_model, os_model = _model(zcu, dataflow=WS), _model(zcu, dataflow=OS)
    assert os_model.metrics([dw])["latency_ms"].value < ws_model.metrics([dw])["latency_ms"].value
    assert ws_model.metrics([fc])["latency_ms"].value < os_model.metrics([fc])["latency_ms"].value


# ------------------------------------------------------------------ vectorised == scalar
def _random_layer(rng) -> LayerSpec:
    op = str(rng.choice(["conv", "pwconv", "dwconv", "linear", "gap"]))
    precision = [None, "int8", "fp32"][int(rng.integers(3))]
    hw = int(rng.integers(1, 30))
    c_in = int(rng.integers(1, 9)) * 4
    c_out = int(rng.integers(1, 9)) * 4
    residual = bool(rng.random() < 0.3)
    if op == "conv":
        groups = int(rng.choice([1, 2, 4]))
        return LayerSpec("conv", c_in, c_out, int(rng.choice([1, 3, 5, 7])), int(rng.choice([1, 2])), groups,
                         (hw, hw), precision=precision, residual=residual)
    if op == "pwconv":
        return LayerSpec("pwconv", c_in, c_out, 1, 1, 1, (hw, hw), precision=precision, residual=residual)
    if op == "dwconv":
        se = int(rng.choice([0, 0, 8, 16]))
        return LayerSpec("dwconv", c_in, c_in, int(rng.choice([3, 5, 7])), int(rng.choice([1, 2])), c_in,
                         (hw, hw), se_channels=se, precision=precision, residual=residual)
    if op == "linear":
        return LayerSpec("linear", c_in * 8, c_out, 1, 1, 1, (1, 1), precision=precision)
    return LayerSpec("gap", c_in, c_in, 1, 1, 1, (hw, hw), precision=precision)


def _random_templates(rng, n):
    return {
        "dataflow": rng.choice([WS, OS], size=n),
        "pe_rows": rng.choice([4, 8, 16, 32, 64], size=n),
        "pe_cols": rng.choice([4, 8, 16, 32, 64], size=n),
        "bit_width": rng.choice([4, 8, 16, 32], size=n),
        "clock_hz": rng.choice([100e6, 150e6, 200e6], size=n),
        "input_buffer_bytes": rng.choice([512, 2048, 8192, 65536], size=n),
        "weight_buffer_bytes": rng.choice([256, 2048, 16384, 131072], size=n),
        "output_buffer_bytes": rng.choice([512, 4096, 8192, 65536], size=n),
        "per_layer_overhead_cycles": rng.choice([0.0, 100.0, 1000.0], size=n),
    }


def _scalar_spec(arrays, i) -> FpgaSpec:
    return dataclasses.replace(SMALL, **{k: v[i].item() for k, v in arrays.items()})


def test_row_cost_on_template_arrays_equals_the_scalar_call_per_template():
    rng = np.random.default_rng(7)
    n = 24
    checked = {"se": 0, "residual": 0, "int8": 0, "fp32": 0, "in_bits": 0, "block_bits": 0}
    for _ in range(60):
        layer = _random_layer(rng)
        arrays = _random_templates(rng, n)
        edge = int(rng.integers(4))
        in_bits = [None, 8, 32][int(rng.integers(3))]
        block_bits = [None, 8, 32][int(rng.integers(3))] if layer.residual else None
        vec = row_cost(layer, template_of(SMALL, **arrays), edge, in_bits, block_bits)
        vec = [np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in vec]
        for i in range(n):
            spec = _scalar_spec(arrays, i)
            one = row_cost(layer, template_of(spec), edge, in_bits, block_bits)
            cost = _model(spec).layer_cost(layer, edge, in_bits, block_bits)
            for j, value in enumerate(one):
                assert vec[j][i] == pytest.approx(float(value), rel=1e-12, abs=0), (layer, i, j)
            assert (cost.compute_cycles, cost.passes) == (vec[0][i], vec[4][i])
            assert cost.memory_cycles == pytest.approx(vec[1][i], rel=1e-12)
            assert cost.cycles == pytest.approx(vec[2][i], rel=1e-12)
            assert cost.dram_bytes == pytest.approx(vec[3][i], rel=1e-12)
        checked["se"] += layer.se
        checked["residual"] += layer.residual
        checked["int8"] += layer.precision == "int8"
        checked["fp32"] += layer.precision == "fp32"
        checked["in_bits"] += in_bits is not None
        checked["block_bits"] += block_bits is not None
    assert all(v >= 2 for v in checked.values()), checked  # every kind of row was exercised


def test_scalar_template_passes_and_dataflow_by_hand():
    rng = np.random.default_rng(3)
    arrays = _random_templates(rng, 6)
    arrays["bit_width"] = np.array([8, 16, 32, 8, 16, 32])
    fp32 = LayerSpec("pwconv", 16, 16, 1, 1, 1, (4, 4), precision="fp32")
    passes = np.broadcast_to(row_cost(fp32, template_of(SMALL, **arrays), 0)[4], (6,))
    assert passes.tolist() == [16, 4, 1, 16, 4, 1]


# ------------------------------------------------------------------ resources
@pytest.mark.parametrize("bits, per_mac", [(4, None), (8, None), (16, 1), (24, 2), (32, 4)])
def test_dsp_count_by_bit_width(bits, per_mac):
    model = _model(get_profile("zcu104").spec, bit_width=bits)
    pes = 32 * 32
    # <= 8 bits: 2 MACs per DSP48E2; wider: ceil(b/27) * ceil(b/18) slices per MAC (27 x 18 multiplier)
    expected = ceil(pes / 2) if per_mac is None else pes * per_mac
    assert model.resources().dsp == expected
    assert model.metrics([LayerSpec("pwconv", 8, 8, 1, 1, 1, (2, 2))])["dsp"].value == expected


def test_bram_and_feasibility_on_zcu104():
    spec = get_profile("zcu104").spec
    res = _model(spec).resources()
    assert res.bram18k == ceil(262144 / 2304) + ceil(131072 / 2304) + ceil(262144 / 2304) == 285
    assert res.dsp == 512 and res.feasible and res.dsp_over == 0 and res.bram18k_over == 0
    big = _model(spec, pe_rows=64, pe_cols=64, input_buffer_bytes=1 << 20, output_buffer_bytes=1 << 20).resources()
    assert big.dsp == 2048 and big.dsp_over == 2048 - 1728
    assert big.bram18k == 2 * ceil((1 << 20) / 2304) + 57 and big.bram18k_over == big.bram18k - 624
    assert not big.feasible
    assert big.to_dict() == {"dsp": 2048, "dsp_total": 1728, "bram18k": big.bram18k, "bram18k_total": 624,
                             "feasible": False, "dsp_over": 320, "bram18k_over": big.bram18k - 624}


def test_fpga_resources_over():
    r = FpgaResources(dsp=100, bram18k=50, dsp_total=100, bram18k_total=49)
    assert (r.dsp_over, r.bram18k_over, r.feasible) == (0, 1, False)
    r = FpgaResources(dsp=101, bram18k=10, dsp_total=100, bram18k_total=49)
    assert (r.dsp_over, r.bram18k_over, r.feasible) == (1, 0, False)
    r = FpgaResources(dsp=3, bram18k=4, dsp_total=100, bram18k_total=49)
    assert (r.dsp_over, r.bram18k_over, r.feasible) == (0, 0, True)


# ------------------------------------------------------------------ the profile schema
def _zcu104_blob() -> dict:
    return tomllib.loads((PROFILE_DIR / "zcu104.toml").read_text(encoding="utf-8"))


def _refused(edit, source="edited.toml") -> str:
    blob = copy.deepcopy(_zcu104_blob())
    edit(blob)
    with pytest.raises(ProfileError) as err:
        parse_profile(blob, source=source)
    text = str(err.value)
    assert "\n" not in text and text.startswith(source)
    return text


def test_shipped_blob_parses():
    profile = parse_profile(_zcu104_blob(), source="zcu104.toml")
    assert profile.spec.search["pe_rows"] == (8, 16, 32, 64)
    assert profile.spec.dataflow == WS


@pytest.mark.parametrize("key, value, fragment", [
    ("pe_rows", 0, "fpga.pe_rows"),
    ("pe_cols", -4, "fpga.pe_cols"),
    ("input_buffer_bytes", -1, "fpga.input_buffer_bytes"),
    ("weight_buffer_bytes", 0, "fpga.weight_buffer_bytes"),
    ("bit_width", 64, "fpga.bit_width"),
    ("clock_hz", 0.0, "fpga.clock_hz"),
    ("energy_pj_per_mac", -1.0, "fpga.energy_pj_per_mac"),
    ("dataflow", "row_stationary", "fpga.dataflow"),
    ("pe_rows", 8.5, "fpga.pe_rows"),
])
def test_fpga_table_range_errors_name_the_key(key, value, fragment):
    text = _refused(lambda b: b["fpga"].__setitem__(key, value))
    assert fragment in text and repr(value) in text


@pytest.mark.parametrize("search_edit, fragment", [
    ({"pe_depth": [1, 2]}, "pe_depth"),
    ({"pe_rows": []}, "fpga.search.pe_rows"),
    ({"pe_rows": 8}, "fpga.search.pe_rows"),
    ({"pe_cols": [8, 16, 8]}, "fpga.search.pe_cols"),
    ({"clock_hz": [100e6, 100000000]}, "fpga.search.clock_hz"),
    ({"dataflow": ["weight_stationary", "row_stationary"]}, "fpga.search.dataflow[1]"),
    ({"input_buffer_bytes": [65536, 0]}, "fpga.search.input_buffer_bytes[1]"),
    ({"bit_width": [8, 33]}, "fpga.search.bit_width[1]"),
    ({"per_layer_overhead_cycles": [0, 100]}, "per_layer_overhead_cycles"),
])
def test_search_table_errors_name_the_key(search_edit, fragment):
    text = _refused(lambda b: b["fpga"]["search"].update(search_edit))
    assert fragment in text


def test_search_whose_smallest_template_exceeds_the_device_is_refused():
    # a tiny device: the smallest 8 x 8 int8 array needs 32 DSPs
    text = _refused(lambda b: b["fpga"].update({"dsp_total": 31}))
    assert "fpga.search" in text and "32 DSP" in text
    # BRAM: the smallest buffers 65536 + 32768 + 65536 B = 29 + 15 + 29 = 73 BRAM18K
    text = _refused(lambda b: b["fpga"].update({"bram18k_total": 72}))
    assert "fpga.search" in text and "73 BRAM18K" in text
    # the same device is accepted one block/slice later
    blob = _zcu104_blob()
    blob["fpga"].update({"dsp_total": 32, "bram18k_total": 73})
    assert parse_profile(blob, source="ok.toml").spec.dsp_total == 32
    # 16-bit options at the smallest: 8 x 8 x 1 slice = 64 DSP
    blob = _zcu104_blob()
    blob["fpga"].update({"dsp_total": 63, "bit_width": 16, "pe_rows": 8, "pe_cols": 8})
    blob["fpga"]["search"].update({"bit_width": [16, 32]})
    with pytest.raises(ProfileError, match=r"fpga\.search.*64 DSP \(of 63\)"):
        parse_profile(blob, source="wide.toml")


def test_a_declared_range_the_device_cannot_hold_is_refused_even_if_the_own_template_fits():
    blob = _zcu104_blob()
    blob["fpga"]["search"].update({"pe_rows": [64, 128], "pe_cols": [64]})  # >= 2,048 DSP > 1,728
    with pytest.raises(ProfileError, match="no template fits the device: the smallest needs 2048 DSP") as err:
        parse_profile(blob, source="x.toml")
    assert "\n" not in str(err.value)
    blob["fpga"]["search"].update({"pe_rows": [32, 64], "pe_cols": [64]})  # 32 x 64 = 1,024 DSP fits
    spec = parse_profile(blob, source="x.toml").spec
    knobs, _ = design_space(spec)
    assert knobs["pe_rows"] == (32, 64) and knobs["pe_cols"] == (32, 64)  # the own 32 is added back


def test_design_space_always_includes_the_spec_value():
    blob = _zcu104_blob()
    blob["fpga"]["search"] = {"pe_rows": [8, 64], "dataflow": ["output_stationary"], "clock_hz": [100e6, 300e6],
                              "bit_width": [16]}
    spec = parse_profile(blob, source="x.toml").spec
    knobs, default = design_space(spec)
    assert knobs["pe_rows"] == (8, 32, 64)
    assert knobs["dataflow"] == ("output_stationary", "weight_stationary")
    assert knobs["clock_hz"] == (100e6, 200e6, 300e6)
    assert knobs["bit_width"] == (8, 16)
    assert default == {"dataflow": WS, "pe_rows": 32, "bit_width": 8, "clock_hz": 200e6}
    assert list(knobs) == [k for k in SEARCHABLE if k in knobs]
    for knob, options in knobs.items():
        assert getattr(spec, knob) in options and default[knob] == getattr(spec, knob)


def test_default_knobs_without_a_search_table():
    blob = _zcu104_blob()
    del blob["fpga"]["search"]
    blob["fpga"]["pe_rows"] = 12  # not one of the default sides: still an option
    spec = parse_profile(blob, source="x.toml").spec
    assert spec.search is None
    knobs, default = design_space(spec)
    assert knobs == {
        "dataflow": (WS, OS),
        "pe_rows": (8, 12, 16, 32, 64),
        "pe_cols": (8, 16, 32, 64),
        # 1/4x, 1/2x, 1x and 2x the profile's buffers
        "input_buffer_bytes": (65536, 131072, 262144, 524288),
        "weight_buffer_bytes": (32768, 65536, 131072, 262144),
        "output_buffer_bytes": (65536, 131072, 262144, 524288),
    }
    assert default == {"dataflow": WS, "pe_rows": 12, "pe_cols": 32, "input_buffer_bytes": 262144,
                       "weight_buffer_bytes": 131072, "output_buffer_bytes": 262144}
    # the shipped table gives the same knobs as the defaults for zcu104
    assert design_space(get_profile("zcu104").spec)[0]["pe_cols"] == (8, 16, 32, 64)

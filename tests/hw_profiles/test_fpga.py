"""The FPGA accelerator cost model, on hand-computed rows and on real layer tables."""

from __future__ import annotations

import dataclasses
from math import ceil

import pytest

from hw_profiles.fpga import BRAM18K_BYTES, TEMPLATE_FIELDS, FpgaCostModel
from hw_profiles.profile import FpgaSpec, Profile, get_profile
from search_spaces import LayerSpec, ofa_mbv3, tiny_mbv3

# A toy template with round numbers: 16x16 PEs at 100 MHz, 3.2 GB/s = 32 bytes per cycle.
TOY_SPEC = FpgaSpec(
    device="toy", dsp_total=200, bram18k_total=10, pe_rows=16, pe_cols=16, bit_width=8, clock_hz=100e6,
    ddr_bandwidth_bytes_per_s=3.2e9, input_buffer_bytes=2048, weight_buffer_bytes=4096, output_buffer_bytes=2048,
    macs_per_dsp=2, per_layer_overhead_cycles=100.0, energy_pj_per_mac=1.0, energy_pj_per_dram_byte=100.0,
    static_power_w=0.5,
)
TOY = FpgaCostModel(Profile(name="toy", version="3", kind="fpga", description="toy", spec=TOY_SPEC))
PW = LayerSpec("pwconv", 64, 32, 1, 1, 1, (8, 8), bn=True)
DW = LayerSpec("dwconv", 64, 64, 3, 1, 64, (8, 8), "relu", bn=True)


@pytest.fixture(scope="module")
def zcu104():
    return FpgaCostModel(get_profile("zcu104"))


def test_pwconv_by_hand():
    (row,) = TOY.layer_report([PW])
    # rows carry 32 output channels in 2 tiles, columns the 64 input channels in 4 tiles, 8x8 pixels one a cycle
    assert row["compute_cycles"] == 2 * 4 * 64 == 512
    assert row["macs"] == 64 * 32 * 64 and row["utilisation"] == 1.0
    # the only row: input (4096 B, over the 2 KiB buffer, read once since the 2 KiB of weights fit theirs),
    # weights 2048 B and output 2048 B all cross DDR at 32 B/cycle
    assert row["dram_bytes"] == 4096 + 2048 + 2048
    assert row["memory_cycles"] == 8192 / 32 == 256
    assert row["bound"] == "compute" and row["cycles"] == 512 + 100
    assert TOY.metrics([PW])["latency_ms"].value == pytest.approx(612 / 100e6 * 1e3)


def test_depthwise_under_uses_the_array():
    (row,) = TOY.layer_report([DW])
    # 16 channels on the rows (4 passes), the 9 taps on 16 columns (1 pass, 7 idle), 64 pixels
    assert row["compute_cycles"] == 4 * 1 * 64 == 256
    assert row["utilisation"] == pytest.approx(9 * 64 * 64 / (256 * 16 * 16)) == 9 / 16


def test_dwconv_utilisation_far_below_pwconv_on_zcu104(zcu104):
    pw = LayerSpec("pwconv", 64, 64, 1, 1, 1, (14, 14))
    dw = LayerSpec("dwconv", 64, 64, 3, 1, 64, (14, 14))
    pw_row, dw_row = zcu104.layer_report([pw, dw])
    assert pw_row["utilisation"] == 1.0
    assert dw_row["utilisation"] == pytest.approx(9 / 32)  # 9 of 32 lanes
    space = ofa_mbv3()
    report = zcu104.layer_report(space.layers(space.with_resolution(space.smallest(), 224)))  # all 3x3 kernels

    def util(op):
        rows = [r for r in report if r["op"] == op]
        return sum(r["macs"] for r in rows) / sum(r["compute_cycles"] for r in rows) / 1024

    assert util("dwconv") < 0.35 * util("pwconv")


def test_tiny_bandwidth_makes_a_layer_memory_bound():
    slow = TOY.with_template(ddr_bandwidth_bytes_per_s=1e8)  # 1 byte per cycle
    (row,) = slow.layer_report([PW])
    assert row["memory_cycles"] == 8192 and row["bound"] == "memory" and row["cycles"] == 8192 + 100
    assert row["effective_utilisation"] == pytest.approx(64 * 32 * 64 / (8292 * 256))
    assert slow.metrics([PW])["latency_ms"].value > TOY.metrics([PW])["latency_ms"].value


def test_small_maps_stay_on_chip_between_rows():
    a = LayerSpec("pwconv", 16, 16, 1, 1, 1, (4, 4))
    b = LayerSpec("pwconv", 16, 16, 1, 1, 1, (4, 4), residual=True)
    first, last = TOY.layer_report([a, b])
    assert first["dram_bytes"] == 256 + 256  # weights + network input; its 256 B output stays on chip
    # weights + network output + the residual's block input, spilled and read back (it would have stayed)
    assert last["dram_bytes"] == 256 + 256 + 2 * 256


def test_inputs_are_refetched_per_weight_chunk_when_neither_fits():
    layer = LayerSpec("pwconv", 256, 64, 1, 1, 1, (4, 4))  # input 4 KiB > 2 KiB, weights 16 KiB = 4 chunks
    (row,) = TOY.layer_report([layer])
    assert row["dram_bytes"] == 16384 + 4 * 4096 + 1024
    (row,) = TOY.with_template(weight_buffer_bytes=16384).layer_report([layer])
    assert row["dram_bytes"] == 16384 + 4096 + 1024


def test_se_and_gap_cost_small_extra_cycles(zcu104):
    with_se = dataclasses.replace(DW, se_channels=16)
    plain, se = TOY.layer_report([DW])[0], TOY.layer_report([with_se])[0]
    # reduce FC 64->16 and expand FC 16->64 on the array, then a scale pass over 64*8*8 on 16 lanes
    assert se["compute_cycles"] - plain["compute_cycles"] == 1 * 4 + 4 * 1 + 4096 // 16
    assert se["dram_bytes"] - plain["dram_bytes"] == 2 * 64 * 16
    (gap,) = zcu104.layer_report([LayerSpec("gap", 960, 960, 1, 1, 960, (7, 7))])
    assert gap["compute_cycles"] == ceil(960 * 49 / 32) and gap["macs"] == 0 and gap["utilisation"] == 0.0


def test_energy_formula(zcu104):
    expected = (64 * 32 * 64 * 1.0 + 8192 * 100.0) * 1e-9 + 0.5 * (612 / 100e6 * 1e3)
    assert TOY.metrics([PW])["energy_mj"].value == pytest.approx(expected)
    space = ofa_mbv3()
    layers = space.layers(space.largest())
    report = zcu104.layer_report(layers)
    metrics = zcu104.metrics(layers)
    spec = zcu104.spec
    latency_ms = sum(r["cycles"] for r in report) / spec.clock_hz * 1e3
    energy = (sum(r["macs"] for r in report) * spec.energy_pj_per_mac
              + sum(r["dram_bytes"] for r in report) * spec.energy_pj_per_dram_byte) * 1e-9
    assert metrics["latency_ms"].value == pytest.approx(latency_ms)
    assert metrics["energy_mj"].value == pytest.approx(energy + spec.static_power_w * latency_ms)


def test_resources_by_hand(zcu104):
    res = zcu104.resources()
    assert (res.dsp, res.bram18k, res.feasible) == (32 * 32 // 2, 114 + 57 + 114, True)
    assert BRAM18K_BYTES == 2304 and ceil(262144 / 2304) == 114 and ceil(131072 / 2304) == 57
    # 64x64 int8 MACs need 4096 / 2 = 2048 DSP48E2, more than the XCZU7EV's 1,728: it does not fit
    big = zcu104.with_template(pe_rows=64, pe_cols=64)
    assert big.resources().dsp == 2048 and not big.resources().feasible
    assert zcu104.with_template(pe_rows=48, pe_cols=48).resources().dsp == 1152  # fits
    assert zcu104.with_template(pe_rows=48, pe_cols=48).resources().feasible
    # BRAM over budget: a 2 MiB input buffer alone needs 911 blocks
    assert not zcu104.with_template(input_buffer_bytes=2 * 1024 * 1024).resources().feasible


def test_oversized_template_is_a_result_not_an_error(zcu104):
    huge = zcu104.with_template(pe_rows=128, pe_cols=128)
    space = ofa_mbv3()
    metrics = huge.metrics(space.layers(space.largest()))
    assert metrics["feasible"].value == 0.0 and metrics["feasible"].unit == "bool"
    assert metrics["dsp"].value == 128 * 128 / 2 and metrics["latency_ms"].value > 0
    assert metrics["latency_ms"].profile == "zcu104@2+pe_cols=128,pe_rows=128"


def test_with_template_validates():
    with pytest.raises(ValueError, match="unknown FpgaSpec field"):
        TOY.with_template(pe_depth=3)
    with pytest.raises(ValueError, match="pe_rows must be a positive integer, got 0"):
        TOY.with_template(pe_rows=0)
    with pytest.raises(ValueError, match="clock_hz must be a finite number > 0"):
        TOY.with_template(clock_hz=0.0)
    assert set(TEMPLATE_FIELDS) <= {f.name for f in dataclasses.fields(FpgaSpec)}
    assert TOY.with_template().profile.ref == "toy@3"


def test_zcu104_profile_loads_with_a_source_per_coefficient():
    profile = get_profile("zcu104")
    assert profile.kind == "fpga" and profile.ref == "zcu104@2"
    spec = profile.spec
    assert (spec.dsp_total, spec.bram18k_total, spec.pe_rows, spec.pe_cols, spec.macs_per_dsp) == (1728, 624, 32, 32, 2)
    assert 0 < spec.ddr_bandwidth_bytes_per_s < 19.2e9  # effective, below the 64-bit DDR4-2400 peak
    assert {f.name for f in dataclasses.fields(FpgaSpec)} <= set(profile.sources)


def test_metrics_are_estimated_for_zcu104(zcu104):
    space = tiny_mbv3()
    metrics = zcu104.metrics(space.layers(space.largest()))
    assert set(metrics) == {"latency_ms", "energy_mj", "dsp", "bram18k", "feasible"}
    assert all(m.source == "estimated" and m.profile == "zcu104@2" for m in metrics.values())
    assert metrics["feasible"].value == 1.0 and metrics["latency_ms"].value > 0


def test_larger_subnets_take_longer(zcu104):
    space = ofa_mbv3()

    def latency(arch):
        return zcu104.metrics(space.layers(arch))["latency_ms"].value

    largest, smallest = space.largest(), space.smallest()
    assert latency(space.with_resolution(smallest, 224)) < latency(largest)
    assert latency(smallest) < latency(space.with_resolution(smallest, 224))
    by_r = [latency(space.with_resolution(largest, r)) for r in space.resolutions]
    assert by_r == sorted(by_r) and len(set(by_r)) == len(by_r)
    tiny = tiny_mbv3()
    assert zcu104.metrics(tiny.layers(tiny.smallest()))["latency_ms"].value \
        < zcu104.metrics(tiny.layers(tiny.largest()))["latency_ms"].value


def test_rows_are_cached(zcu104):
    assert zcu104.layer_cost(PW) is zcu104.layer_cost(dataclasses.replace(PW))
    space = ofa_mbv3()
    layers = space.layers(space.largest())
    assert zcu104.metrics(layers) == zcu104.metrics(list(layers))


def test_cost_model_for_picks_the_fpga_model():
    pytest.importorskip("hw_profiles.mcu")
    from hw_profiles.cost_model import cost_model_for

    assert isinstance(cost_model_for(get_profile("zcu104")), FpgaCostModel)

"""Cost models on mixed-precision layer tables (``LayerSpec.precision`` set by a quantization policy):
MCU bytes, flash and float rates, FPGA per-row bits and passes, GPU per-row formats, model size
(``weight_bytes``), precision labels, the profile key for float rates, and block tables refusing a
quantized space."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from hw_profiles import ProfileError, cost_model_for, get_profile, weight_bytes
from hw_profiles.analytic import layer_weight_bytes
from hw_profiles.block_table import BlockCostTable, NotDecomposableError
from hw_profiles.fpga import FpgaCostModel
from hw_profiles.gpu import GpuRooflineModel
from hw_profiles.mcu import McuCostModel, layer_flash_bytes
from hw_profiles.metric import precision_label
from hw_profiles.profile import FLOAT_MAC_RATIO, FpgaSpec, Profile, load_profile_file
from nas.testing.cost_models import CostModelContract
from search_spaces import LayerSpec, QuantPolicy, get_space

QSPACE = get_space("tiny_mbv3+q")
PLAIN = QSPACE.base


def hand_profile(**changes):
    """stm32f746 with round coefficients (as in test_mcu): fp32 rates default to half the int8 ones."""
    profile = get_profile("stm32f746")
    coefficients = {"clock_hz": 1e6, "macs_per_cycle": {"conv": 1.0, "pwconv": 2.0, "dwconv": 0.5, "linear": 1.0},
                    "runtime_sram_bytes": 1000, "runtime_flash_bytes": 5000, "per_layer_overhead_cycles": 100,
                    "elementwise_cycles_per_element": 2}
    return dataclasses.replace(profile, spec=dataclasses.replace(profile.spec, **{**coefficients, **changes}))


def values(metrics):
    return {name: metric.value for name, metric in metrics.items()}


def with_precision(layers, precision):
    return [dataclasses.replace(row, precision=precision) for row in layers]


STEM = LayerSpec("conv", 3, 8, 3, 2, 1, (20, 20), "hswish", bn=True, block="stem")


def inverted_block():
    return [
        STEM,
        LayerSpec("pwconv", 8, 16, 1, 1, 1, (10, 10), "relu", bn=True, block="b"),
        LayerSpec("dwconv", 16, 16, 3, 1, 16, (10, 10), "relu", bn=True, block="b"),
        LayerSpec("pwconv", 16, 8, 1, 1, 1, (10, 10), residual=True, bn=True, block="b"),
    ]


def quantized(network, precision, **overrides):
    """``network`` (a plain tiny_mbv3 arch) with every block in ``precision`` except ``overrides``."""
    policy = QuantPolicy.uniform(QSPACE.labels, precision)
    return QSPACE.combine(network, QuantPolicy({**policy.precisions, **overrides}))


# ---------------------------------------------------------------- MCU, by hand
def test_all_int8_and_unset_rows_give_the_same_mcu_figures():
    model = McuCostModel(hand_profile())
    plain = model.metrics(inverted_block())
    int8 = model.metrics(with_precision(inverted_block(), "int8"))
    assert values(plain) == values(int8)
    assert {m.precision for m in plain.values()} == {m.precision for m in int8.values()} == {"int8"}


def test_an_all_fp32_block_by_hand():
    got = McuCostModel(hand_profile()).metrics(with_precision(inverted_block(), "fp32"))
    # live bytes are the int8 counts (test_mcu: 2000, 2400, 2544, 3200) at 4 bytes per element
    assert got["peak_sram_kb"].value == pytest.approx((4 * 3200 + 1000) / 1024)
    # flash: 4-byte weights + a 4-byte bias per output channel, no scale:
    # stem 216*4 + 8*4 = 896; expand 128*4 + 64 = 576; depthwise 144*4 + 64 = 640; project 128*4 + 32 = 544
    assert got["flash_kb"].value == pytest.approx((896 + 576 + 640 + 544 + 5000) / 1024)
    # MACs at half the int8 rates: stem 21600/0.5, expand 12800/1, depthwise 14400/0.25, project 12800/1 =
    # 126400; 6 calls * 100; elementwise (add 800 + h-swish 800) * 2 = 3200
    assert got["latency_ms"].value == pytest.approx((126400 + 600 + 3200) / 1e3)
    assert {m.precision for m in got.values()} == {"fp32"}


def test_a_format_boundary_is_converted_by_the_consuming_row_by_hand():
    layers = [LayerSpec("pwconv", 2, 8, 1, 1, 1, (10, 10), block="a", precision="int8"),
              LayerSpec("pwconv", 8, 1, 1, 1, 1, (10, 10), block="b", precision="fp32")]
    got = McuCostModel(hand_profile()).metrics(layers)
    # a: 200 + 800 bytes; b converts its 800 int8 elements to fp32 first: 800 + 3200 live (the peak),
    # then runs on 3200 in + 100 * 4 out
    assert got["peak_sram_kb"].value == pytest.approx((4000 + 1000) / 1024)
    # a: 1600 MACs / 2 + 100; b: 800 MACs / 1.0 (fp32 pwconv) + 100; the conversion 800 * 2 + 100
    assert got["latency_ms"].value == pytest.approx((900 + 900 + 1700) / 1e3)
    # a: 16 + 8 * 8 = 80; b: 8 * 4 + 1 * 4 = 36
    assert got["flash_kb"].value == pytest.approx((80 + 36 + 5000) / 1024)
    assert {m.precision for m in got.values()} == {"mixed"}


def test_fp32_rows_need_4x_the_bytes_in_sram_and_the_patch_path():
    rng = np.random.default_rng(0)
    for patched in (False, True):
        model = McuCostModel(get_profile("stm32f746"), patch_first_stage=patched, patches=3)
        runtime = model.spec.runtime_sram_bytes / 1024
        for network in [PLAIN.sample(rng) for _ in range(5)] + [PLAIN.largest()]:
            int8 = values(model.metrics(QSPACE.layers(quantized(network, "int8"))))
            fp32 = values(model.metrics(QSPACE.layers(quantized(network, "fp32"))))
            # a uniform policy has no boundary: every live byte scales by 4
            assert fp32["peak_sram_kb"] - runtime == pytest.approx(4 * (int8["peak_sram_kb"] - runtime), rel=1e-12)
            assert fp32["latency_ms"] > int8["latency_ms"]
            assert fp32["patch_recompute_overhead"] == int8["patch_recompute_overhead"]


def test_a_patched_stage_with_a_format_boundary_by_hand():
    layers = [
        LayerSpec("conv", 3, 8, 3, 2, 1, (16, 16), bn=True, block="stem", precision="fp32"),
        LayerSpec("dwconv", 8, 8, 3, 1, 8, (8, 8), bn=True, block="block0", precision="int8"),
        LayerSpec("pwconv", 8, 8, 1, 1, 1, (8, 8), residual=True, bn=True, block="block0", precision="int8"),
    ]
    model = McuCostModel(hand_profile(), patch_first_stage=True, patches=2)
    got = values(model.metrics(layers))
    # as test_mcu's patched stage (2x2 patches; tiles: 5x5 into the depthwise, 4x4 into the project), with
    # the image (768) in the fp32 stem's 4 bytes and the stage output (512) in block0's int8: 3584 always.
    # stem: its 8*25 tile out at 4 B = 800; depthwise: first converts its 200-element tile, 200*4 + 200*1
    # = 1000 (the peak; the int8 run needs 200 + 128); project: 128 + held 200.
    assert got["peak_sram_kb"] == pytest.approx((3584 + 1000 + 1000) / 1024)
    int8 = values(model.metrics(with_precision(layers, "int8")))
    # the stem runs at the fp32 conv rate 0.5 (13824 MACs * 100/64 of its pixels: 43200 cycles, not 21600)
    # and the depthwise converts 8 * 10 * 10 input elements over the 4 patches (* 2) + 4 calls (* 100)
    assert got["latency_ms"] - int8["latency_ms"] == pytest.approx((21600 + 1600 + 400) / 1e3)


def test_a_single_fp32_block_changes_only_its_own_contribution():
    model = McuCostModel(get_profile("stm32f746"))
    spec = model.spec
    rng = np.random.default_rng(1)
    for network in [PLAIN.sample(rng) for _ in range(6)]:
        base = QSPACE.layers(quantized(network, "int8"))
        label = sorted({row.block for row in base if row.block.startswith("stage")})[0]
        one = QSPACE.layers(quantized(network, "int8", **{label: "fp32"}))
        rows = [i for i, row in enumerate(one) if row.block == label]
        assert [row.precision for row in one].count("fp32") == len(rows)
        a, b = values(model.metrics(base)), values(model.metrics(one))
        flash = sum(layer_flash_bytes(one[i]) - layer_flash_bytes(base[i]) for i in rows)
        assert b["flash_kb"] - a["flash_kb"] == pytest.approx(flash / 1024)
        # its rows run at the fp32 rates; two conversions: into the block and out of it
        work = sum(model._row(one[i])[5] - model._row(base[i])[5] for i in rows)
        first, after = rows[0], rows[-1] + 1
        elements = [one[i].in_channels * one[i].in_hw[0] * one[i].in_hw[1] for i in (first, after)]
        conversions = sum(elements) * spec.elementwise_cycles_per_element + 2 * spec.per_layer_overhead_cycles
        assert b["latency_ms"] - a["latency_ms"] == pytest.approx((work + conversions) / spec.clock_hz * 1e3)
        assert b["peak_sram_kb"] >= a["peak_sram_kb"]
        assert model.metrics(one)["latency_ms"].precision == "mixed"


def test_all_fp32_flash_is_about_4x_the_int8_weights():
    model = McuCostModel(get_profile("stm32f746"))
    runtime = model.spec.runtime_flash_bytes
    for network in (PLAIN.largest(), PLAIN.smallest()):
        int8_rows = QSPACE.layers(quantized(network, "int8"))
        fp32 = model.metrics(QSPACE.layers(quantized(network, "fp32")))["flash_kb"].value * 1024 - runtime
        int8 = model.metrics(int8_rows)["flash_kb"].value * 1024 - runtime
        # per conv: fp32 4W + 4C against int8 W + 8C (C output channels, SE convs included)
        channels = sum(0 if r.op == "gap" else r.out_channels + (r.se_channels + r.out_channels if r.se else 0)
                       for r in int8_rows)
        weights = int8 - 8 * channels
        assert fp32 == pytest.approx(4 * weights + 4 * channels)
        assert 3.5 < fp32 / int8 < 4.0


def test_float_rates_from_the_profile_override_the_default():
    layers = with_precision(inverted_block(), "fp32")
    default = McuCostModel(hand_profile()).metrics(layers)["latency_ms"].value
    faster = McuCostModel(hand_profile(float_macs_per_cycle={"dwconv": 0.5})).metrics(layers)
    # only the depthwise rate changes: 14400 MACs at 0.5 instead of 0.25
    assert faster["latency_ms"].value == pytest.approx(default - (57600 - 28800) / 1e3)
    int8 = with_precision(inverted_block(), "int8")
    assert values(McuCostModel(hand_profile(float_macs_per_cycle={"dwconv": 0.5})).metrics(int8)) == \
        values(McuCostModel(hand_profile()).metrics(int8))
    spec = get_profile("stm32f746").spec
    assert spec.float_macs_per_cycle is None and FLOAT_MAC_RATIO == 0.5
    assert spec.float_rate("pwconv") == pytest.approx(0.35)


# ---------------------------------------------------------------- the profile key
def mcu_toml(tmp_path, extra: str) -> Path:
    text = (Path(__file__).resolve().parents[2] / "hw_profiles" / "profiles" / "stm32f746.toml").read_text()
    path = tmp_path / "board.toml"
    path.write_text(text.replace("elementwise_cycles_per_element = 8\n", f"elementwise_cycles_per_element = 8\n{extra}\n"))
    return path


@pytest.mark.parametrize(("value", "fragment"), [
    ("{ conv = -1.0 }", "mcu.float_macs_per_cycle.conv must be a finite number > 0 (fp32 MACs per cycle), got -1.0"),
    ("{ pwconv = 0 }", "mcu.float_macs_per_cycle.pwconv must be a finite number > 0"),
    ("{ pwconv = nan }", "mcu.float_macs_per_cycle.pwconv must be a finite number > 0"),
    ("{ gap = 1.0 }", "mcu.float_macs_per_cycle has unknown op kind(s) ['gap']; valid: conv, pwconv, dwconv, linear"),
    ('{ conv = "fast" }', "mcu.float_macs_per_cycle.conv must be a number, got 'fast'"),
    ("0.5", "mcu.float_macs_per_cycle must be a table of numbers, got 0.5"),
])
def test_a_bad_float_rate_is_a_profile_error_naming_the_key_and_range(tmp_path, value, fragment):
    with pytest.raises(ProfileError) as info:
        load_profile_file(mcu_toml(tmp_path, f"float_macs_per_cycle = {value}"))
    message = str(info.value)
    assert message.startswith("board.toml: ") and fragment in message and "\n" not in message


def test_a_good_float_rate_loads_and_a_bad_one_built_in_code_is_refused(tmp_path):
    profile = load_profile_file(mcu_toml(tmp_path, "float_macs_per_cycle = { conv = 0.3, linear = 1 }"))
    assert dict(profile.spec.float_macs_per_cycle) == {"conv": 0.3, "linear": 1.0}
    assert profile.spec.float_rate("conv") == 0.3 and profile.spec.float_rate("dwconv") == pytest.approx(0.175)
    assert load_profile_file(mcu_toml(tmp_path, "")).spec.float_macs_per_cycle is None
    with pytest.raises(ValueError, match=r"float_macs_per_cycle needs a finite rate > 0 per op kind"):
        McuCostModel(hand_profile(float_macs_per_cycle={"conv": 0.0}))
    with pytest.raises(ValueError, match=r"float_macs_per_cycle needs a finite rate > 0"):
        McuCostModel(hand_profile(float_macs_per_cycle={"gap": 1.0}))


# ---------------------------------------------------------------- FPGA
TOY_SPEC = FpgaSpec(
    device="toy", dsp_total=200, bram18k_total=10, pe_rows=16, pe_cols=16, bit_width=8, clock_hz=100e6,
    ddr_bandwidth_bytes_per_s=3.2e9, input_buffer_bytes=2048, weight_buffer_bytes=4096, output_buffer_bytes=2048,
    macs_per_dsp=2, per_layer_overhead_cycles=100.0, energy_pj_per_mac=1.0, energy_pj_per_dram_byte=100.0,
    static_power_w=0.5,
)
TOY = FpgaCostModel(Profile(name="toy", version="3", kind="fpga", description="toy", spec=TOY_SPEC))
PW = LayerSpec("pwconv", 64, 32, 1, 1, 1, (8, 8), bn=True)


def test_fpga_fp32_row_by_hand():
    (row,) = TOY.layer_report([dataclasses.replace(PW, precision="fp32")])
    # 4096 input, 2048 weight and 2048 output elements at 4 bytes: the input (16 KiB) is over its buffer and
    # the weights (8 KiB) over theirs (2 chunks), so the input streams twice: 8192 + 2 * 16384 + 8192
    assert row["dram_bytes"] == 8192 + 2 * 16384 + 8192 and row["memory_cycles"] == 49152 / 32
    # the int8 array takes (32/8) * (32/8) = 16 passes: 512 * 16 compute cycles
    assert row["passes"] == 16 and row["compute_cycles"] == 512 * 16 and row["utilisation"] == 1.0
    assert row["cycles"] == 512 * 16 + 100
    (int8,) = TOY.layer_report([dataclasses.replace(PW, precision="int8")])
    assert int8 == {**TOY.layer_report([PW])[0], "precision": "int8"} and int8["passes"] == 1
    energy = TOY.metrics([dataclasses.replace(PW, precision="fp32")])["energy_mj"].value
    assert energy == pytest.approx((64 * 32 * 64 * 16 * 1.0 + 49152 * 100.0) * 1e-9 + 0.5 * 8292 / 100e6 * 1e3)


@pytest.mark.parametrize(("producer", "consumer", "map_bytes"), [("fp32", "int8", 8192), ("int8", "fp32", 0)])
def test_fpga_maps_stay_in_the_format_their_producer_wrote(producer, consumer, map_bytes):
    # a 2048-element map between two rows: at 1 byte it fits the 2 KiB buffers and stays on chip; at
    # 4 bytes it spills: written by the producer and read back by the consumer, both at 4 bytes
    a = LayerSpec("pwconv", 16, 32, 1, 1, 1, (8, 8), block="a", precision=producer)
    b = LayerSpec("pwconv", 32, 16, 1, 1, 1, (8, 8), block="b", precision=consumer)
    first, second = TOY.layer_report([a, b])
    a_bits, b_bits = (32 if p == "fp32" else 8 for p in (producer, consumer))
    assert first["dram_bytes"] == 16 * 64 * a_bits // 8 + 512 * a_bits // 8 + map_bytes
    assert second["dram_bytes"] == map_bytes + 512 * b_bits // 8 + 16 * 64 * b_bits // 8
    assert TOY.metrics([a, b])["latency_ms"].precision == "mixed"


def test_fpga_residual_reads_its_block_input_in_the_format_it_was_written():
    stem = LayerSpec("pwconv", 8, 16, 1, 1, 1, (8, 8), block="stem", precision="fp32")  # 1024 elements out
    block = [LayerSpec("pwconv", 16, 16, 1, 1, 1, (8, 8), block="b", precision="int8"),
             LayerSpec("pwconv", 16, 16, 1, 1, 1, (8, 8), residual=True, block="b", precision="int8")]
    mixed = TOY.layer_report([stem, *block])[2]
    same = TOY.layer_report([dataclasses.replace(stem, precision="int8"), *block])[2]
    # the block input: 1024 elements at 4 B = 4096 B, too big to have stayed on chip (read once) against
    # 1024 B at int8, which would have stayed (spill write + read)
    assert mixed["dram_bytes"] - same["dram_bytes"] == 4096 - 2 * 1024


def test_fpga_plain_tables_keep_their_figures_and_int8_policies_match_them():
    model = cost_model_for(get_profile("zcu104"))
    rng = np.random.default_rng(2)
    for network in [PLAIN.sample(rng) for _ in range(4)]:
        plain = model.metrics(PLAIN.layers(network))
        int8 = model.metrics(QSPACE.layers(quantized(network, "int8")))
        assert values(plain) == values(int8) and plain["latency_ms"].precision == "int8"
        fp32 = model.metrics(QSPACE.layers(quantized(network, "fp32")))
        assert fp32["latency_ms"].value > plain["latency_ms"].value and fp32["energy_mj"].precision == "fp32"
    wide = model.with_template(bit_width=16)
    (row,) = wide.layer_report([dataclasses.replace(PW, precision="fp32")])
    assert row["passes"] == 4 and wide.layer_report([dataclasses.replace(PW, precision="int8")])[0]["passes"] == 1
    assert wide.metrics([PW])["latency_ms"].precision is None  # int16 is none of fp32/int8/mixed


# ---------------------------------------------------------------- GPU and labels
def test_gpu_rows_run_in_their_own_format():
    model = GpuRooflineModel(get_profile("a100"))  # fp16 by default
    assert model.metrics([PW])["latency_ms"].precision is None
    fp32 = GpuRooflineModel(get_profile("a100"), precision="fp32")
    int8 = GpuRooflineModel(get_profile("a100"), precision="int8")
    for precision, reference in (("fp32", fp32), ("int8", int8)):
        row = dataclasses.replace(PW, precision=precision)
        assert model.layer_latency_s(row) == reference.layer_latency_s(PW)
        assert model.metrics([row])["latency_ms"].precision == precision
    assert model.metrics([dataclasses.replace(PW, precision="int8"), PW])["latency_ms"].precision == "mixed"


def test_precision_labels():
    assert precision_label(["int8", "int8"]) == "int8" and precision_label(["fp32"]) == "fp32"
    assert precision_label(["int8", "fp32"]) == "mixed" and precision_label(["fp16"]) is None
    assert precision_label([]) is None
    network = PLAIN.largest()
    mixed = quantized(network, "int8", head="fp32")
    for model in (McuCostModel(get_profile("stm32h743")), cost_model_for(get_profile("zcu104"))):
        for arch, label in ((quantized(network, "int8"), "int8"), (quantized(network, "fp32"), "fp32"),
                            (mixed, "mixed")):
            assert {m.precision for m in model.metrics(QSPACE.layers(arch)).values()} == {label}
        assert {m.precision for m in model.metrics(PLAIN.layers(network)).values()} == {"int8"}


# ---------------------------------------------------------------- model size
def test_weight_bytes_by_hand():
    pw = LayerSpec("pwconv", 8, 16, 1, 1, 1, (10, 10))  # 128 weights, 16 output channels
    assert weight_bytes([pw]) == 128 * 4 + 16 * 4  # unset: the float model
    assert weight_bytes([dataclasses.replace(pw, precision="fp32")]) == 576
    assert weight_bytes([dataclasses.replace(pw, precision="int8")]) == 128 + 16 * (4 + 4)
    gap = LayerSpec("gap", 16, 16, 1, 1, 16, (10, 10))
    assert weight_bytes([gap, dataclasses.replace(gap, precision="int8")]) == 0
    se = LayerSpec("dwconv", 16, 16, 3, 1, 16, (10, 10), se_channels=4, precision="int8")
    # depthwise 144 + 16*8; SE reduce 64 + 4*8; SE expand 64 + 16*8
    assert layer_weight_bytes(se) == 144 + 128 + 64 + 32 + 64 + 128
    assert layer_weight_bytes(dataclasses.replace(se, precision="fp32")) == 4 * (144 + 16 + 64 + 4 + 64 + 16)


def test_weight_bytes_of_policies_match_the_mcu_flash():
    model = McuCostModel(get_profile("stm32f746"))
    network = PLAIN.largest()
    for arch in (quantized(network, "int8"), quantized(network, "fp32"), quantized(network, "int8", head="fp32")):
        layers = QSPACE.layers(arch)
        flash = model.metrics(layers)["flash_kb"].value * 1024 - model.spec.runtime_flash_bytes
        assert weight_bytes(layers) == pytest.approx(flash)
    assert weight_bytes(PLAIN.layers(network)) == weight_bytes(QSPACE.layers(quantized(network, "fp32")))


# ---------------------------------------------------------------- block tables
@pytest.mark.parametrize("metric", ["peak_sram_kb", "flash_kb", "latency_ms"])
def test_block_tables_refuse_a_quantized_space_at_once(metric):
    model = McuCostModel(get_profile("stm32f746"))
    calls = []

    def fn(layers):
        calls.append(1)
        return model.metrics(layers)[metric].value

    start = time.perf_counter()
    with pytest.raises(NotDecomposableError, match=r"MobileNetV3Space, got QuantizedSpace 'tiny_mbv3\+q'"):
        BlockCostTable.fit(QSPACE, fn)
    assert not calls and time.perf_counter() - start < 0.5


# ---------------------------------------------------------------- the cost-model contract on a quantized space
class _OnQuantizedSpace:
    @pytest.fixture
    def space(self):
        return QSPACE


class TestMcuOnQuantizedSpace(_OnQuantizedSpace, CostModelContract):
    monotone_metrics = ("latency_ms", "flash_kb", "peak_sram_kb", "sram_over_kb", "flash_over_kb")
    antitone_metrics = ("feasible",)

    @pytest.fixture
    def cost_model(self):
        return McuCostModel(get_profile("stm32f746"))


class TestMcuPatchBasedOnQuantizedSpace(_OnQuantizedSpace, CostModelContract):
    # Not peak SRAM: a deeper first stage can end in a block of a narrower format, and the whole stage
    # output is buffered in its last row's format (fp32 stage1.block1 -> int8 stage1.block2: 4x smaller).
    monotone_metrics = ("latency_ms", "flash_kb", "flash_over_kb")

    @pytest.fixture
    def cost_model(self):
        return McuCostModel(get_profile("stm32f746"), patch_first_stage=True, patches=2)


def test_a_deeper_patched_stage_can_buffer_its_output_in_a_narrower_format():
    model = McuCostModel(get_profile("stm32f746"), patch_first_stage=True, patches=2)
    network = PLAIN.parse({**PLAIN.largest().to_dict(), "r": 28, "d_0": 2})
    deeper = PLAIN.parse({**PLAIN.largest().to_dict(), "r": 28, "d_0": 3})
    policy = {"stage1.block0": "fp32", "stage1.block1": "fp32"}  # stage1.block2 (only in `deeper`) stays int8
    shallow_sram = model.metrics(QSPACE.layers(quantized(network, "int8", **policy)))["peak_sram_kb"].value
    deeper_sram = model.metrics(QSPACE.layers(quantized(deeper, "int8", **policy)))["peak_sram_kb"].value
    assert deeper_sram < shallow_sram


class TestFpgaOnQuantizedSpace(_OnQuantizedSpace, CostModelContract):
    monotone_metrics = ("latency_ms", "energy_mj")
    antitone_metrics = ("feasible",)

    @pytest.fixture
    def cost_model(self):
        return cost_model_for(get_profile("zcu104"))

"""Transformer rows on every device model: MCU (hand-computed SRAM, flash and latency), GPU roofline,
FPGA template and ZigZag, and the growth of each figure with tokens, heads and MLP width."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
from pathlib import Path

import pytest

from hw_profiles import cost_model_for, get_profile
from hw_profiles._schema import ProfileError
from hw_profiles.analytic import layer_weight_bytes
from hw_profiles.fpga import FpgaCostModel
from hw_profiles.gpu import GpuRooflineModel, layer_bytes, layer_kernels
from hw_profiles.mcu import McuCostModel
from hw_profiles.profile import ELEMENT_CYCLE_DEFAULTS, FpgaSpec, Profile, load_profile_file
from search_spaces import LayerSpec, get_space
from search_spaces.vit import _transformer_rows


def hand_profile(**changes):
    """stm32f746 with round coefficients (as ``test_mcu``), so that the hand counts stay readable."""
    profile = get_profile("stm32f746")
    coefficients = {"clock_hz": 1e6, "macs_per_cycle": {"conv": 1.0, "pwconv": 2.0, "dwconv": 0.5, "linear": 1.0},
                    "runtime_sram_bytes": 1000, "runtime_flash_bytes": 5000, "per_layer_overhead_cycles": 100,
                    "elementwise_cycles_per_element": 2}
    return dataclasses.replace(profile, spec=dataclasses.replace(profile.spec, **{**coefficients, **changes}))


def mcu_toml(tmp_path, extra: str) -> Path:
    """The shipped stm32f746 file with ``extra`` lines added to its [mcu] table."""
    text = (Path(__file__).resolve().parents[2] / "hw_profiles" / "profiles" / "stm32f746.toml").read_text()
    path = tmp_path / "board.toml"
    key = "elementwise_cycles_per_element = 8\n"
    path.write_text(text.replace(key, f"{key}{extra}\n"))
    return path


def layer(tokens: int, heads: int, head_dim: int = 4, embed: int = 8, hidden: int = 16) -> list[LayerSpec]:
    """The nine rows of one pre-norm transformer layer (``search_spaces.vit``)."""
    return list(_transformer_rows(0, embed, tokens, heads, heads * head_dim, hidden, True))


def mcu(**changes) -> McuCostModel:
    """The hand profile of ``test_mcu`` with round transformer costs."""
    rates = dict(layernorm_cycles_per_element=3.0, softmax_cycles_per_element=5.0, gelu_cycles_per_element=4.0)
    return McuCostModel(hand_profile(**{**rates, **changes}))


def values(metrics) -> dict:
    return {name: metric.value for name, metric in metrics.items()}


# ---------------------------------------------------------------------------------------- MCU
def test_one_transformer_layer_by_hand():
    got = values(mcu().metrics(layer(tokens=5, heads=2)))
    # T=5, embed 8, 2 heads of 4 (q/k/v width 8), hidden 16; int8. Live elements per row:
    # ln 40+40; qkv 40+120 + held block input 40 = 200; QK: q 40 + scores 2*5*5=50 + held 40 + k,v 80 = 210;
    # softmax 50+50+40+v 40 = 180; AV 50+40+40+40 = 170; proj 40+40+40; ln 80; fc1 40+80+40; fc2 80+40+40
    assert got["peak_sram_kb"] == pytest.approx((210 + 1000) / 1024)
    # flash: 2 layer norms 2*(16 params * 4 B) = 128; qkv 8*24 + 24*8 = 384; proj 64 + 64; fc1 128 + 128;
    # fc2 128 + 64 -> 1088 + runtime 5000
    assert got["flash_kb"] == pytest.approx((1088 + 5000) / 1024)
    # cycles: ln 2 * 40*3; qkv 960 MACs / pwconv 2 (a linear over tokens); QK and AV 200 MACs / 2 each;
    # softmax 50*5; proj 320/2 + add 40*2; fc1 640/2 + GELU 80*4; fc2 640/2 + add 40*2 = 2450;
    # 12 calls (9 rows, 2 adds, the GELU) * 100
    assert got["latency_ms"] == pytest.approx((2450 + 1200) / 1e3)


def test_the_score_buffer_sets_the_peak_and_grows_with_tokens_squared_and_heads():
    def live(tokens, heads):
        return (mcu().metrics(layer(tokens, heads, head_dim=8 // heads))["peak_sram_kb"].value * 1024) - 1000

    # T=20, width 8: softmax holds 2 * heads * T^2 scores + the block input 160 + v 160
    assert live(20, 2) == pytest.approx(2 * 2 * 400 + 320)
    assert live(20, 4) == pytest.approx(2 * 4 * 400 + 320)  # heads double the scores, not q/k/v
    assert live(40, 2) == pytest.approx(2 * 2 * 1600 + 640)
    fp32 = [dataclasses.replace(r, precision="fp32") for r in layer(20, 2, head_dim=4)]
    assert values(mcu().metrics(fp32))["peak_sram_kb"] * 1024 - 1000 == pytest.approx(4 * live(20, 2))


def test_embedding_and_classifier_rows_by_hand():
    rows = [LayerSpec("patch_embed", 1, 8, 2, 2, 1, (4, 4), bias=True, block="stem"),
            LayerSpec("tokens", 8, 8, 1, 1, 1, (4, 1), block="stem"),
            LayerSpec("linear", 8, 10, 1, 1, 1, (1, 1), bias=True, block="classifier")]
    got = values(mcu().metrics(rows))
    assert got["peak_sram_kb"] == pytest.approx((32 + 40 + 1000) / 1024)  # tokens: 4x8 in, 5x8 out
    # patch_embed 32 + 8*8; tokens (5*8 + 8) fp32; classifier 80 + 80
    assert got["flash_kb"] == pytest.approx((96 + 192 + 160 + 5000) / 1024)
    # patch_embed 128 MACs / conv 1; tokens 40 adds * 2; classifier 80 / linear 1; 3 calls
    assert got["latency_ms"] == pytest.approx((128 + 80 + 80 + 300) / 1e3)
    # patch-based inference never applies to transformer rows, even in a block labelled "stem"
    patched = McuCostModel(mcu().profile, patch_first_stage=True, patches=2).metrics(rows)
    assert values(patched) == got


def test_mcu_converts_k_and_v_written_by_a_projection_in_another_format():
    rows = layer(tokens=5, heads=2)  # T=5, q/k/v 2 heads x 4 = 8 wide: 40 elements each
    int8 = [dataclasses.replace(r, precision="int8") for r in rows]
    fp32_qkv = [dataclasses.replace(r, precision="fp32" if i == 1 else "int8") for i, r in enumerate(rows)]
    base, mixed = (values(mcu().metrics(r))["latency_ms"] for r in (int8, fp32_qkv))
    # the projection's 960 MACs at the float pwconv rate 1 instead of 2: +480; then four conversions of
    # 40 elements (2 cycles each) and one call (100) each: the layer norm's output into the fp32
    # projection, and q and k at QK^T and v at AV back to int8
    assert mixed == pytest.approx(base + (480 + 4 * (40 * 2 + 100)) / 1e3)
    # the softmax's scores reach an fp32 AV in int8 (50 elements) and v does not need converting
    fp32_av = [dataclasses.replace(r, precision="fp32" if i in (1, 4) else "int8") for i, r in enumerate(rows)]
    got = values(mcu().metrics(fp32_av))["latency_ms"]
    # + AV's 200 MACs at rate 1 instead of 2, + its scores in (50 x 2 + 100) and its output back to the
    # int8 projection (40 x 2 + 100), and no conversion of v
    assert got == pytest.approx(mixed + (100 + (50 * 2 + 100) + (40 * 2 + 100) - (40 * 2 + 100)) / 1e3)


def test_optional_rates_override_the_defaults():
    rows = layer(tokens=5, heads=2)
    base = values(mcu().metrics(rows))["latency_ms"]
    rates = {"conv": 1.0, "pwconv": 2.0, "dwconv": 0.5, "linear": 1.0}
    slower = values(mcu(macs_per_cycle={**rates, "matmul": 1.0}).metrics(rows))["latency_ms"]
    assert slower == pytest.approx(base + 200 / 1e3)  # QK and AV: 200 MACs each at 1 instead of 2
    defaults = values(McuCostModel(hand_profile()).metrics(rows))["latency_ms"]
    d = ELEMENT_CYCLE_DEFAULTS  # 2 layer norms of 40, 50 scores, 80 GELU outputs
    extra = 80 * (d["layernorm"] - 3) + 50 * (d["softmax"] - 5) + 80 * (d["gelu"] - 4)
    assert defaults == pytest.approx(base + extra / 1e3)
    assert d["softmax"] > d["layernorm"] > d["gelu"]  # the exp passes cost the most
    fp32 = [dataclasses.replace(r, precision="fp32") for r in rows]
    with_float = mcu(float_macs_per_cycle={"matmul": 0.25}).metrics(fp32)["latency_ms"].value
    plain_float = mcu().metrics(fp32)["latency_ms"].value  # matmul at half the pwconv rate: 1
    assert with_float == pytest.approx(plain_float + 2 * 200 * (1 / 0.25 - 1 / 1.0) / 1e3)


def test_profile_keys_for_transformers_load_old_files_still_do(tmp_path):
    old = load_profile_file(mcu_toml(tmp_path, ""))
    assert old.spec.softmax_cycles_per_element is None and "matmul" not in old.spec.macs_per_cycle
    assert old.spec.int8_rate("matmul") == old.spec.macs_per_cycle["pwconv"]
    assert old.spec.int8_rate("patch_embed") == old.spec.macs_per_cycle["conv"]
    assert old.spec.cycles_per_element("softmax") == ELEMENT_CYCLE_DEFAULTS["softmax"]
    path = mcu_toml(tmp_path, "softmax_cycles_per_element = 30\ngelu_cycles_per_element = 2")
    path.write_text(path.read_text().replace("linear = 0.45 }", "linear = 0.45, matmul = 0.9 }", 1))
    new = load_profile_file(path)
    assert new.spec.int8_rate("matmul") == 0.9 and new.spec.cycles_per_element("softmax") == 30.0
    assert new.spec.float_rate("matmul") == pytest.approx(0.45)
    with pytest.raises(ProfileError, match=r"softmax_cycles_per_element must be a finite number >= 0"):
        load_profile_file(mcu_toml(tmp_path, "softmax_cycles_per_element = -1"))
    with pytest.raises(ProfileError, match=r"unknown op kind\(s\) \['softmax'\]"):
        load_profile_file(mcu_toml(tmp_path, "float_macs_per_cycle = { softmax = 1.0 }"))
    with pytest.raises(ValueError, match=r"macs_per_cycle needs a positive rate for \['matmul'\]"):
        McuCostModel(hand_profile(macs_per_cycle={"conv": 1.0, "pwconv": 1.0, "dwconv": 1.0, "linear": 1.0,
                                                  "matmul": 0.0}))


def test_mcu_flash_is_the_analytic_weight_bytes_with_embeddings_and_norms():
    space = get_space("autoformer_t")
    rows = space.layers(space.smallest())
    spec = get_profile("stm32f746").spec
    got = McuCostModel(get_profile("stm32f746")).metrics(rows)["flash_kb"].value * 1024
    stored = sum(layer_weight_bytes(r, unset="int8") for r in rows)
    assert got == stored + spec.runtime_flash_bytes
    fp32_only = sum(layer_weight_bytes(r) for r in rows if r.op in ("layernorm", "tokens"))
    assert fp32_only == 4 * (2 * 192 * (2 * 12 + 1) + 197 * 192 + 192)  # affine pairs, position embedding, cls


# ---------------------------------------------------------------------------------------- GPU
def test_gpu_bytes_and_kernels_of_transformer_rows():
    qkv, qk, soft, av, proj, ln, fc1, fc2 = (layer(5, 2)[i] for i in (1, 2, 3, 4, 5, 6, 7, 8))
    assert layer_bytes(qk, 2) == (40 + 40 + 50) * 2  # q, k (the second operand, no weights), scores
    assert layer_bytes(av, 2) == (50 + 40 + 40) * 2  # scores, v, output
    assert layer_bytes(soft, 2) == (50 + 50) * 2
    assert layer_bytes(ln, 2) == (40 + 40 + 16) * 2  # + the affine pair
    assert layer_bytes(fc1, 1) == 40 + 80 + 8 * 16  # weights read once for all tokens
    assert layer_bytes(fc2, 1) == 80 + 40 + 40 + 16 * 8  # + the residual's block input
    tokens = LayerSpec("tokens", 8, 8, 1, 1, 1, (4, 1))
    assert layer_bytes(tokens, 1) == 32 + 40 + 48  # + the position embedding and cls token
    assert [layer_kernels(r) for r in (qkv, qk, soft, av, proj, ln, fc1, fc2)] == [1, 1, 1, 1, 2, 1, 1, 2]


def test_gpu_matmul_is_compute_or_memory_bound_by_its_operands():
    model = GpuRooflineModel(get_profile("h100"), precision="fp16")
    spec = model.profile.spec
    qk = layer(tokens=1024, heads=8, head_dim=64)[2]
    compute = 2 * qk.op_macs / (spec.peak_flops["fp16"] * spec.compute_efficiency)
    memory = layer_bytes(qk, 2) / (spec.memory_bandwidth_bytes_per_s * spec.memory_efficiency)
    assert model.layer_latency_s(qk) == pytest.approx(max(compute, memory) + spec.launch_overhead_s)


# ---------------------------------------------------------------------------------------- FPGA
TOY = FpgaCostModel(Profile(name="toy", version="1", kind="fpga", description="toy", spec=FpgaSpec(
    device="toy", dsp_total=200, bram18k_total=10, pe_rows=16, pe_cols=16, bit_width=8, clock_hz=100e6,
    ddr_bandwidth_bytes_per_s=3.2e9, input_buffer_bytes=2048, weight_buffer_bytes=4096, output_buffer_bytes=2048,
    macs_per_dsp=2, per_layer_overhead_cycles=100.0, energy_pj_per_mac=1.0, energy_pj_per_dram_byte=100.0,
    static_power_w=0.5)))


def test_fpga_attention_rows_by_hand():
    ln, qkv, qk, soft, av = layer(5, 2)[:5]
    # QK^T: 2 heads x ceil(5 outputs / 16 rows) x ceil(4 reduction / 16 columns) x 5 tokens; nothing off chip
    assert TOY.layer_cost(qk) == (200, 10, 0.0, 110.0, 0.0, 1)
    assert TOY.layer_cost(av)[1] == 2 * 1 * 1 * 5
    assert TOY.layer_cost(qkv)[1] == math.ceil(24 / 16) * 1 * 5  # a 1x1 conv over 5 tokens
    assert TOY.layer_cost(ln)[1:] == (2 * 3, 16 / 32, 106.0, 16.0, 1)  # 2 vector passes; the affine pair from DDR
    assert TOY.layer_cost(soft)[1] == 3 * math.ceil(50 / 16)  # max, exp-sum, scale
    tokens = LayerSpec("tokens", 8, 8, 1, 1, 1, (4, 1))
    assert TOY.layer_cost(tokens)[1] == 3 and TOY.layer_cost(tokens).dram_bytes == 48  # pos + cls from DDR


def test_fpga_big_matmul_streams_both_operands():
    qk = layer(tokens=64, heads=2, head_dim=32)[2]
    cost = TOY.layer_cost(qk)
    assert cost.compute_cycles == 2 * 4 * 2 * 64
    # q (4096 B) and k (4096 B) exceed the 2 KiB on-chip buffers, the 8 KiB of scores too; k fits the
    # weight buffer, so q is streamed once
    assert cost.dram_bytes == 4096 + 4096 + 8192 and cost.memory_cycles == 16384 / 32
    assert TOY.with_template(weight_buffer_bytes=2048).layer_cost(qk).dram_bytes == 4096 + 2 * 4096 + 8192


def test_fpga_q_k_v_written_to_dram_by_their_projection_are_read_back():
    # 64 KiB input/output buffers (inside zcu104's [fpga.search] range), autoformer_t largest: T=197,
    # q/k/v width 4 heads x 64 = 256, so q, k and v are 50,432 B each (each fits 64 KiB alone), but the
    # projection writes all three, 151,296 B, to DDR
    space = get_space("autoformer_t")
    rows = space.layers(space.largest())
    model = cost_model_for(get_profile("zcu104")).with_template(input_buffer_bytes=65536, output_buffer_bytes=65536)
    report = model.layer_report(rows)
    qkv, qk, soft, av = (report[i]["dram_bytes"] for i in range(3, 7))
    assert [rows[i].op for i in range(3, 7)] == ["linear", "matmul", "softmax", "matmul"]
    tensor, scores = 256 * 197, 4 * 197 * 197
    assert qkv == 240 * 768 + 3 * tensor  # weights + q/k/v written
    assert qk == tensor + tensor + scores  # q and k read back, the scores written
    assert av == scores + tensor  # the softmax's scores read back, and v
    # on the device's own 256 KiB buffers the projection's output stays on chip: nothing is read back
    default = cost_model_for(get_profile("zcu104")).layer_report(rows)
    assert [default[i]["dram_bytes"] for i in (4, 6)] == [0.0, 0.0]


def test_fpga_q_k_v_are_read_in_their_projections_format():
    rows = layer(tokens=16, heads=2, head_dim=8)  # q/k/v 16 x 16 elements each
    fp32_qkv = [dataclasses.replace(r, precision="fp32" if r.op == "linear" and i == 1 else "int8")
                for i, r in enumerate(rows)]
    report = TOY.layer_report(fp32_qkv)
    # the fp32 projection wrote 3 x 256 x 4 B = 3,072 B > the 2 KiB buffers: QK^T reads q and k at
    # 4 bytes, AV reads v at 4 bytes; the 2 x 16 x 16 int8 scores (512 B) stay on chip
    assert report[1]["dram_bytes"] == 8 * 48 * 4 + 3 * 256 * 4  # fp32 weights (embed 8), q/k/v written
    assert report[2]["dram_bytes"] == 256 * 4 + 256 * 4
    assert report[4]["dram_bytes"] == 256 * 4
    # int8 throughout: 768 B stays on chip, and nothing is read back
    report = TOY.layer_report([dataclasses.replace(r, precision="int8") for r in rows])
    assert report[2]["dram_bytes"] == report[4]["dram_bytes"] == 0.0


# ---------------------------------------------------------------------------------------- growth
def _grow(space, arch, **changes):
    return space.parse({**arch.to_dict(), **changes})


@pytest.mark.parametrize("name", ["stm32f746", "h100", "zcu104"])
def test_figures_grow_with_tokens_heads_and_mlp(name):
    space = get_space("tiny_vit")
    model = cost_model_for(get_profile(name))
    base = _grow(space, space.smallest(), depth=2)
    variants = {"tokens": _grow(space, base, patch=4), "heads": _grow(space, base, heads_1=4),
                "mlp": _grow(space, base, mlp_0=4), "embed": _grow(space, base, embed=64)}
    before = values(model.metrics(space.layers(base)))
    growing = [k for k in before if k in ("latency_ms", "energy_mj", "peak_sram_kb")]
    assert growing and all(math.isfinite(v) and v >= 0 for v in before.values())
    for knob, arch in variants.items():
        after = values(model.metrics(space.layers(arch)))
        for metric in growing:
            if metric == "peak_sram_kb" and knob == "mlp":
                continue  # the attention's score buffer, not the MLP, sets this small network's peak
            assert after[metric] > before[metric], (knob, metric)


def test_autoformer_figures_are_finite_and_ordered():
    space = get_space("autoformer_t")
    small, large = space.layers(space.smallest()), space.layers(space.largest())
    for name in ("stm32h743", "a100", "h100", "zcu104"):
        model = cost_model_for(get_profile(name))
        lo, hi = values(model.metrics(small)), values(model.metrics(large))
        assert all(math.isfinite(v) for v in (*lo.values(), *hi.values()))
        assert hi["latency_ms"] > lo["latency_ms"] > 0
    sram = McuCostModel(get_profile("stm32h743")).metrics(large)["peak_sram_kb"].value * 1024 - 8192
    assert sram == 2 * 4 * 197 ** 2 + 240 * 197 + 256 * 197  # softmax: scores in and out, block input, v


# ---------------------------------------------------------------------------------------- ZigZag
def test_zigzag_workload_of_transformer_rows():
    from hw_profiles import zigzag_engine as zz

    ln, qkv, qk, soft, av = layer(5, 2)[:5]
    assert zz.zigzag_ops(ln, 8) == [] and zz.zigzag_ops(soft, 8) == []
    (gemm,) = zz.zigzag_ops(qkv, 8)
    assert dict(gemm.sizes) == {"D": 5, "K": 24, "C": 8}
    heads = zz.zigzag_ops(qk, 8)
    assert len(heads) == 2 and len(set(heads)) == 1 and dict(heads[0].sizes) == {"D": 5, "K": 5, "C": 4}
    assert dict(zz.zigzag_ops(av, 8)[0].sizes) == {"D": 5, "K": 4, "C": 5}
    fp32 = zz.zigzag_ops(dataclasses.replace(qk, precision="fp32"), 8)[0]
    assert (fp32.w_bits, fp32.a_bits) == (32, 32)  # the second operand is an activation
    (patch,) = zz.zigzag_ops(LayerSpec("patch_embed", 3, 8, 4, 4, 1, (16, 16), bias=True), 8)
    assert patch.operator == "Conv" and patch.stride == 4 and patch.pad == 0


@pytest.mark.skipif(not any(d.metadata["Name"] == "zigzag-dse" for d in importlib.metadata.distributions()),
                    reason="zigzag-dse is not installed")
def test_zigzag_runs_a_transformer_layer():
    from hw_profiles import zigzag_engine as zz

    spec = TOY.spec
    small, big = layer(5, 1), layer(9, 2)
    got = [zz.zigzag_metrics(rows, spec, profile_ref="toy@1") for rows in (small, big)]
    assert all(m["latency_ms"].source == "estimated" and m["latency_ms"].profile.endswith(":toy@1") for m in got)
    assert 0 < got[0]["latency_ms"].value < got[1]["latency_ms"].value

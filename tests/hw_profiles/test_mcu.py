"""MCU cost model: hand-built layer tables with every expected number worked out by hand, the
shipped STM32 profiles, feasibility, patch-based inference and sanity on the OFA space."""

from __future__ import annotations

import dataclasses

import pytest

from hw_profiles.metric import Metric
from hw_profiles.mcu import McuCostModel
from hw_profiles.profile import get_profile
from search_spaces import LayerSpec, get_space

METRICS = {"peak_sram_kb", "flash_kb", "latency_ms", "feasible", "sram_over_kb", "flash_over_kb",
           "patch_recompute_overhead"}


def hand_profile(**changes):
    """stm32f746 with round coefficients, so that the hand counts below stay readable."""
    profile = get_profile("stm32f746")
    coefficients = {"clock_hz": 1e6, "macs_per_cycle": {"conv": 1.0, "pwconv": 2.0, "dwconv": 0.5, "linear": 1.0},
                    "runtime_sram_bytes": 1000, "runtime_flash_bytes": 5000, "per_layer_overhead_cycles": 100,
                    "elementwise_cycles_per_element": 2}
    return dataclasses.replace(profile, spec=dataclasses.replace(profile.spec, **{**coefficients, **changes}))


STEM = LayerSpec("conv", 3, 8, 3, 2, 1, (20, 20), "hswish", bn=True, block="stem")  # 1200 -> 800 elements


def inverted_block(residual=True):
    """stem, then 1x1 expand 8->16, 3x3 depthwise (in place), 1x1 project 16->8 (+ residual), at 10x10."""
    return [
        STEM,
        LayerSpec("pwconv", 8, 16, 1, 1, 1, (10, 10), "relu", bn=True, block="b"),
        LayerSpec("dwconv", 16, 16, 3, 1, 16, (10, 10), "relu", bn=True, block="b"),
        LayerSpec("pwconv", 16, 8, 1, 1, 1, (10, 10), residual=residual, bn=True, block="b"),
    ]


def values(metrics):
    return {name: metric.value for name, metric in metrics.items()}


def test_residual_block_with_in_place_depthwise_by_hand():
    got = values(McuCostModel(hand_profile()).metrics(inverted_block()))
    # live bytes (int8): stem 1200 in + 800 out = 2000; expand 800 + 1600 = 2400 (the block input is its
    # own input); depthwise in place: max(1600, 1600) + one padded channel 12*12 = 1744, + held 800 = 2544;
    # project 1600 + 800 + held 800 = 3200. Peak 3200 + runtime 1000.
    assert got["peak_sram_kb"] == pytest.approx(4200 / 1024)
    # flash: weights + 8 bytes (int32 bias, scale) per output channel
    # stem 3*9*8 + 8*8 = 280; expand 128 + 128 = 256; depthwise 9*16 + 128 = 272; project 128 + 64 = 192
    assert got["flash_kb"] == pytest.approx((280 + 256 + 272 + 192 + 5000) / 1024)
    # cycles: MACs / rate: stem 21600/1, expand 12800/2, depthwise 14400/0.5, project 12800/2 = 63200;
    # 6 kernel calls (4 ops, the residual add, the stem's h-swish) * 100 = 600;
    # elementwise (residual add 800 + h-swish 800) * 2 = 3200. 67000 cycles at 1 MHz.
    assert got["latency_ms"] == pytest.approx(67.0)
    assert got["feasible"] == 1.0 and got["sram_over_kb"] == got["flash_over_kb"] == 0.0
    assert got["patch_recompute_overhead"] == 0.0


def test_without_residual_nothing_is_held():
    got = values(McuCostModel(hand_profile()).metrics(inverted_block(residual=False)))
    assert got["peak_sram_kb"] == pytest.approx((2400 + 1000) / 1024)  # expand or project: 800 + 1600
    assert got["latency_ms"] == pytest.approx((63200 + 500 + 1600) / 1e3)  # no add call, no add elements


def test_depthwise_holding_its_block_input_and_se_by_hand():
    layers = [
        dataclasses.replace(STEM, act="none"),
        LayerSpec("dwconv", 8, 8, 3, 1, 8, (10, 10), "relu", se_channels=4, bn=True, block="block0"),
        LayerSpec("pwconv", 8, 8, 1, 1, 1, (10, 10), residual=True, bn=True, block="block0"),
        LayerSpec("gap", 8, 8, 1, 1, 8, (10, 10), block="head"),
        LayerSpec("linear", 8, 10, 1, 1, 1, (1, 1), bias=True, block="classifier"),
    ]
    got = values(McuCostModel(hand_profile()).metrics(layers))
    # depthwise input is the residual block input, so not in place: 800 + 800, SE adds its pooled
    # and hidden vectors (8 + 4) = 1612; project 800 + 800 + held 800 = 2400; gap 800 + 8; linear 8 + 10
    assert got["peak_sram_kb"] == pytest.approx((2400 + 1000) / 1024)
    # flash: stem 280; depthwise 72 + 64, SE reduce 32 + 32, SE expand 32 + 64 = 296; project 128;
    # linear 80 + 80 = 160; gap 0
    assert got["flash_kb"] == pytest.approx((280 + 296 + 128 + 160 + 5000) / 1024)
    # MACs/rate: stem 21600, depthwise 7200/0.5 = 14400, SE 64/1 (linear rate), project 6400/2 = 3200,
    # linear 80 -> 39344; calls: stem 1, dw + SE 5, project + add 2, gap 1, linear 1 = 10 -> 1000;
    # elementwise: SE squeeze + scale 2*800, add 800, gap 800 = 3200 elements * 2 = 6400
    assert got["latency_ms"] == pytest.approx((39344 + 1000 + 6400) / 1e3)


def test_se_vectors_can_set_the_peak_of_an_in_place_depthwise():
    layer = LayerSpec("dwconv", 16, 16, 3, 1, 16, (1, 1), se_channels=8, block="x")
    got = values(McuCostModel(hand_profile()).metrics([layer]))
    # in place: max(16, 16) + 3*3 padded channel = 25 < output 16 + pooled 16 + hidden 8 = 40
    assert got["peak_sram_kb"] == pytest.approx((40 + 1000) / 1024)


def test_patch_based_stage_by_hand():
    layers = [
        LayerSpec("conv", 3, 8, 3, 2, 1, (16, 16), bn=True, block="stem"),
        LayerSpec("dwconv", 8, 8, 3, 1, 8, (8, 8), bn=True, block="block0"),
        LayerSpec("pwconv", 8, 8, 1, 1, 1, (8, 8), residual=True, bn=True, block="block0"),
    ]
    got = values(McuCostModel(hand_profile(), patch_first_stage=True, patches=2).metrics(layers))
    # 2x2 patches of the 8x8 output: rows [0,4) and [4,8) per axis; back through the 3x3 depthwise
    # [0,5), [3,8); back through the stride-2 stem: [0,10), [5,16). Largest tiles: 5x5 into the
    # depthwise, 4x4 into the project. Always live: the image 768 + the stage output 512.
    # stem: its tile output 8*25 = 200; depthwise (holds its block input, not in place): 200 + 8*16;
    # project: 128 in + 200 held. Peak 1280 + 328 = 1608 (layer by layer: 512 * 3 = 1536).
    assert got["peak_sram_kb"] == pytest.approx((1608 + 1000) / 1024)
    # the stem computes (5+5)^2 = 100 of its 64 output pixels: 13824 * 36/64 = 7776 extra MACs out of
    # 13824 + 4608 + 4096
    assert got["patch_recompute_overhead"] == pytest.approx(7776 / 22528)
    plain = values(McuCostModel(hand_profile()).metrics(layers))
    assert plain["peak_sram_kb"] == pytest.approx((1536 + 1000) / 1024)
    # latency pays the recomputed MACs and each kernel call once per patch (4 calls: 3 ops + the add)
    extra_cycles = 7776 / 1.0 + 4 * (4 - 1) * 100
    assert got["latency_ms"] == pytest.approx(plain["latency_ms"] + extra_cycles / 1e3)


@pytest.mark.parametrize("which", ["sram", "flash"])
def test_feasibility_flips_at_the_limit(which):
    layers = inverted_block()
    needed = {"sram": 4200, "flash": 1000 + 5000}[which]
    at_limit = values(McuCostModel(hand_profile(**{f"{which}_bytes": needed})).metrics(layers))
    assert at_limit["feasible"] == 1.0 and at_limit[f"{which}_over_kb"] == 0.0
    over = values(McuCostModel(hand_profile(**{f"{which}_bytes": needed - 512})).metrics(layers))
    assert over["feasible"] == 0.0 and over[f"{which}_over_kb"] == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["stm32f746", "stm32h743"])
def test_shipped_profiles_load_with_a_source_per_coefficient(name):
    profile = get_profile(name)
    assert profile.kind == "mcu" and profile.spec.core == "cortex-m7"
    assert set(profile.spec.macs_per_cycle) == {"conv", "pwconv", "dwconv", "linear"}
    assert {f.name for f in dataclasses.fields(profile.spec)} <= set(profile.sources)
    clock, sram, flash = {"stm32f746": (216e6, 320, 1024), "stm32h743": (480e6, 512, 2048)}[name]
    assert profile.spec.clock_hz == clock
    assert (profile.spec.sram_bytes, profile.spec.flash_bytes) == (sram * 1024, flash * 1024)


def test_every_metric_is_estimated_and_tagged_with_the_profile():
    space = get_space("tiny_mbv3")
    metrics = McuCostModel(get_profile("stm32f746")).metrics(space.layers(space.largest()))
    assert set(metrics) == METRICS
    for metric in metrics.values():
        assert isinstance(metric, Metric) and metric.source == "estimated" and metric.profile == "stm32f746@1"
    assert metrics["feasible"].unit == "bool" and metrics["peak_sram_kb"].unit == "KiB"


def test_ofa_largest_needs_more_than_smallest_and_is_infeasible_on_f746():
    space = get_space("ofa_mbv3")
    model = McuCostModel(get_profile("stm32f746"))
    big = values(model.metrics(space.layers(space.largest())))
    small = values(model.metrics(space.layers(space.smallest())))
    for name in ("peak_sram_kb", "flash_kb", "latency_ms"):
        assert big[name] > small[name]
    assert big["feasible"] == 0.0 and big["flash_kb"] > 1024 and big["flash_over_kb"] > 0
    # Even the smallest subnet (r=128) does not fit: its activations do (264 KiB of 320), but the fixed
    # head (960->1280 feature mix and 1280->1000 classifier, ~2.5M int8 weights) alone exceeds 1 MiB.
    assert small["peak_sram_kb"] < 320 and small["flash_kb"] > 3 * 1024 and small["feasible"] == 0.0


def test_patch_based_inference_lowers_ofa_peak_sram_at_224_and_costs_recompute():
    space = get_space("ofa_mbv3")
    profile = get_profile("stm32f746")
    for arch in (space.largest(), space.with_resolution(space.smallest(), 224)):
        layers = space.layers(arch)
        plain = values(McuCostModel(profile).metrics(layers))
        patched = values(McuCostModel(profile, patch_first_stage=True, patches=4).metrics(layers))
        assert patched["peak_sram_kb"] < plain["peak_sram_kb"]
        assert patched["patch_recompute_overhead"] > 0
        assert patched["latency_ms"] > plain["latency_ms"]
        assert patched["flash_kb"] == plain["flash_kb"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"patches": 0}, "patches must be a positive int, got 0"),
     ({"patches": True}, "patches must be a positive int, got True"),
     ({"patch_first_stage": "yes"}, "patch_first_stage must be a bool, got 'yes'")],
)
def test_constructor_validates_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        McuCostModel(get_profile("stm32f746"), **kwargs)


def test_profile_without_a_rate_for_an_op_kind_is_rejected():
    profile = hand_profile(macs_per_cycle={"conv": 1.0, "pwconv": 1.0, "dwconv": 0.0})
    with pytest.raises(ValueError, match=r"macs_per_cycle needs a positive rate for \['dwconv', 'linear'\]"):
        McuCostModel(profile)
    with pytest.raises(ValueError, match="needs a mcu profile"):
        McuCostModel(get_profile("a100"))

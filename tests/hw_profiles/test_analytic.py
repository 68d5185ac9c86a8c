"""Analytic costs on hand-built layer tables, with every expected number worked out by hand."""

import re

import pytest

from hw_profiles.analytic import (
    activation_elements,
    layer_macs,
    layer_params,
    macs,
    params,
    peak_activation_bytes,
)
from search_spaces import LayerSpec

CONV3X3 = LayerSpec("conv", 3, 16, 3, 2, 1, (32, 32), "hswish", bn=True)
DWCONV5X5 = LayerSpec("dwconv", 32, 32, 5, 1, 32, (14, 14), "relu", bn=True)
PWCONV_SE = LayerSpec("pwconv", 16, 64, 1, 1, 1, (8, 8), "relu", se_channels=16, bn=True)
LINEAR = LayerSpec("linear", 1280, 1000, 1, 1, 1, (1, 1), bias=True)
GAP = LayerSpec("gap", 960, 960, 1, 1, 960, (7, 7))

HAND_COUNTED = [
    # layer, MACs, params
    # 3x3 conv, stride 2: 32x32 -> 16x16 output; weights 3*3*3*16 + BN (gamma, beta) per output channel
    (CONV3X3, 3 * 3 * 3 * 16 * 16 * 16, 3 * 3 * 3 * 16 + 2 * 16),
    # depthwise 5x5: one 5x5 filter per channel, 14x14 output
    (DWCONV5X5, 5 * 5 * 32 * 14 * 14, 5 * 5 * 32 + 2 * 32),
    # 1x1 conv 16->64 at 8x8, then SE on 64 channels (64->16 and 16->64 1x1 convs at 1x1, with biases)
    (PWCONV_SE, 16 * 64 * 8 * 8 + (64 * 16 + 16 * 64), 16 * 64 + 2 * 64 + (64 * 16 + 16) + (16 * 64 + 64)),
    # fully connected with bias, no BN
    (LINEAR, 1280 * 1000, 1280 * 1000 + 1000),
    # pooling costs nothing
    (GAP, 0, 0),
]


@pytest.mark.parametrize(("layer", "expected_macs", "expected_params"), HAND_COUNTED,
                         ids=["conv3x3", "dwconv5x5", "pwconv_se", "linear", "gap"])
def test_layer_macs_and_params(layer, expected_macs, expected_params):
    assert layer_macs(layer) == expected_macs
    assert layer_params(layer) == expected_params


def test_totals_are_sums_over_rows():
    layers = [row for row, _, _ in HAND_COUNTED]
    assert macs(layers) == sum(m for _, m, _ in HAND_COUNTED) == 110_592 + 156_800 + 67_584 + 1_280_000
    assert params(layers) == sum(p for _, _, p in HAND_COUNTED) == 464 + 864 + 3_280 + 1_281_000
    assert macs([]) == params([]) == 0


@pytest.mark.parametrize(("bias", "bn", "extra"), [(False, False, 0), (True, False, 8), (False, True, 16),
                                                   (True, True, 24)])
def test_bias_and_bn_add_per_output_channel_params(bias, bn, extra):
    layer = LayerSpec("pwconv", 4, 8, 1, 1, 1, (5, 5), bias=bias, bn=bn)
    assert layer_params(layer) == 4 * 8 + extra
    assert layer_macs(layer) == 4 * 8 * 5 * 5  # neither costs MACs


def residual_block(residual=True):
    """A stem in its own block, then an inverted-residual block 8 -> 32 -> 8 at 10x10."""
    return [
        LayerSpec("conv", 3, 8, 3, 2, 1, (20, 20), "relu", bn=True, block="stem"),
        LayerSpec("pwconv", 8, 32, 1, 1, 1, (10, 10), "relu", bn=True, block="b"),
        LayerSpec("dwconv", 32, 32, 3, 1, 32, (10, 10), "relu", bn=True, block="b"),
        LayerSpec("pwconv", 32, 8, 1, 1, 1, (10, 10), residual=residual, bn=True, block="b"),
    ]


def test_peak_activation_counts_the_held_residual_input():
    # Elements live per row: input + output + the block input held for the add (8*10*10 = 800,
    # the block's own input, not the stem's 3*20*20).
    #   stem:      1200 + 800            = 2000
    #   expand:     800 + 3200           = 4000 (its input *is* the block input)
    #   depthwise: 3200 + 3200 + 800     = 7200  <- peak
    #   project:   3200 + 800  + 800     = 4800
    layers = residual_block()
    assert activation_elements(layers) == [2000, 4000, 7200, 4800]
    assert peak_activation_bytes(layers, 4) == 7200 * 4 == 28_800
    assert peak_activation_bytes(layers, 1) == peak_activation_bytes(layers, 4) // 4


def test_without_residual_the_peak_is_smaller():
    assert activation_elements(residual_block(residual=False)) == [2000, 4000, 6400, 4000]
    assert peak_activation_bytes(residual_block(residual=False), 4) == 6400 * 4


@pytest.mark.parametrize("bytes_per_element", [0, -4])
def test_peak_activation_rejects_non_positive_element_size(bytes_per_element):
    with pytest.raises(ValueError, match=re.escape(str(bytes_per_element))):
        peak_activation_bytes(residual_block(), bytes_per_element)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"op": "conv2d"}, "LayerSpec.op='conv2d' is not one of"),
        ({"act": "swish"}, "LayerSpec.act='swish' is not one of ['none', 'relu', 'hswish', 'gelu']"),
        ({"op": "patch_embed", "kernel": 3, "stride": 3}, "LayerSpec patch_embed needs kernel == stride dividing in_hw=(8, 8)"),
        ({"groups": 3}, "LayerSpec.groups=3 must divide in_channels=8 and out_channels=16"),
        ({"groups": 16}, "LayerSpec.groups=16 must divide in_channels=8"),
        ({"in_channels": 0}, "LayerSpec.in_channels must be a positive int, got 0"),
        ({"kernel": 3.0}, "LayerSpec.kernel must be a positive int, got 3.0"),
        ({"stride": -1}, "LayerSpec.stride must be a positive int, got -1"),
    ],
)
def test_layer_spec_validation_shows_the_bad_value(kwargs, fragment):
    fields = dict(op="conv", in_channels=8, out_channels=16, kernel=3, stride=1, groups=1, in_hw=(8, 8))
    LayerSpec(**fields)  # the base row is valid
    with pytest.raises(ValueError, match=re.escape(fragment)):
        LayerSpec(**{**fields, **kwargs})


@pytest.mark.parametrize(
    ("layer", "out_hw"),
    [(CONV3X3, (16, 16)), (DWCONV5X5, (14, 14)), (GAP, (1, 1)), (LINEAR, (1, 1)),
     (LayerSpec("dwconv", 8, 8, 7, 2, 8, (7, 7)), (4, 4))],
)
def test_out_hw_uses_same_padding(layer, out_hw):
    assert layer.out_hw == out_hw

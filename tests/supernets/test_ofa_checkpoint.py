"""Loading an original OFA MobileNetV3 checkpoint (layout from data/ofa_state_dict_shapes.json,
written by OFA's own ``OFAMobileNetV3(...).state_dict()``) into our supernet."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from search_spaces import NASError
from supernets import create_supernet
from supernets.ofa_checkpoint import CheckpointMismatchError, load_ofa_state_dict, ofa_key_map

SHAPES = json.loads((Path(__file__).parent / "data" / "ofa_state_dict_shapes.json").read_text())


def _random_ofa_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for i, (key, shape) in enumerate(SHAPES.items()):
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(1000 + i)
        else:
            out[key] = torch.randn(shape, generator=gen)
    return out


@pytest.fixture(scope="module")
def supernet():
    return create_supernet("ofa_mbv3", seed=0)


@pytest.fixture(scope="module")
def ofa_sd():
    return _random_ofa_state_dict()


def test_key_map_covers_ofa_layout_exactly(supernet):
    mapping = ofa_key_map(supernet)
    assert set(mapping) == set(SHAPES)
    ours = supernet.state_dict()
    assert sorted(mapping.values()) == sorted(ours)
    assert all(list(ours[mapping[k]].shape) == shape for k, shape in SHAPES.items())
    assert mapping["blocks.0.conv.depth_conv.conv.weight"] == "first_block.depthwise.0.weight"
    assert mapping["blocks.20.conv.depth_conv.conv.7to5_matrix"] == "blocks.19.depthwise.transforms.7to5"


def test_values_land_where_expected(supernet, ofa_sd):
    load_ofa_state_dict(supernet, ofa_sd)
    sd = ofa_sd
    assert torch.equal(supernet.stem[0].weight, sd["first_conv.conv.weight"])
    assert torch.equal(supernet.stem[1].running_mean, sd["first_conv.bn.running_mean"])
    assert torch.equal(supernet.first_block.project[0].weight, sd["blocks.0.conv.point_linear.conv.weight"])
    block = supernet.blocks[6]  # OFA's blocks.7: stage 2 (SE), slot 6
    assert block.depthwise.weight.shape == (240, 1, 7, 7)
    assert torch.equal(block.depthwise.weight, sd["blocks.7.conv.depth_conv.conv.conv.weight"])
    assert torch.equal(block.depthwise.transforms["5to3"], sd["blocks.7.conv.depth_conv.conv.5to3_matrix"])
    assert torch.equal(block.depthwise.transforms["7to5"], sd["blocks.7.conv.depth_conv.conv.7to5_matrix"])
    assert torch.equal(block.se.reduce.bias, sd["blocks.7.conv.depth_conv.se.fc.reduce.bias"])
    assert torch.equal(block.expand_bn.weight, sd["blocks.7.conv.inverted_bottleneck.bn.bn.weight"])
    last_bn = supernet.blocks[12].project_bn  # OFA's blocks.13: stage 3, slot 12
    assert torch.equal(last_bn.running_var, sd["blocks.13.conv.point_linear.bn.bn.running_var"])
    assert int(last_bn.num_batches_tracked) == int(
        sd["blocks.13.conv.point_linear.bn.bn.num_batches_tracked"])
    assert torch.equal(supernet.feature_mix[0].weight, sd["feature_mix_layer.conv.weight"])
    assert torch.equal(supernet.classifier.bias, sd["classifier.linear.bias"])


def test_released_file_wrapper_and_legacy_names_load(supernet, ofa_sd):
    legacy = {k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
              for k, v in _random_ofa_state_dict(seed=1).items()}
    assert "blocks.1.mobile_inverted_conv.depth_conv.conv.conv.weight" in legacy
    buffer = io.BytesIO()
    torch.save({"state_dict": legacy}, buffer)
    buffer.seek(0)
    load_ofa_state_dict(supernet, torch.load(buffer, weights_only=True))
    assert torch.equal(supernet.blocks[0].depthwise.weight,
                       legacy["blocks.1.mobile_inverted_conv.depth_conv.conv.conv.weight"])
    load_ofa_state_dict(supernet, {"state_dict": ofa_sd})
    assert torch.equal(supernet.blocks[0].depthwise.weight, ofa_sd["blocks.1.conv.depth_conv.conv.conv.weight"])


def test_missing_num_batches_tracked_becomes_zero(supernet, ofa_sd):
    sd = {k: v for k, v in ofa_sd.items() if not k.endswith("num_batches_tracked")}
    load_ofa_state_dict(supernet, sd)
    assert int(supernet.stem[1].num_batches_tracked) == 0


def _raises(supernet, sd, *fragments):
    before = supernet.stem[0].weight.clone()
    with pytest.raises(CheckpointMismatchError) as info:
        load_ofa_state_dict(supernet, sd)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert isinstance(info.value, NASError) and isinstance(info.value, ValueError)
    assert torch.equal(supernet.stem[0].weight, before)  # nothing loaded


def test_missing_key_raises(supernet, ofa_sd):
    sd = {k: v for k, v in ofa_sd.items() if k != "blocks.7.conv.depth_conv.conv.5to3_matrix"}
    _raises(supernet, sd, "missing", "'blocks.7.conv.depth_conv.conv.5to3_matrix'", "[9, 9]")


def test_extra_key_raises(supernet, ofa_sd):
    _raises(supernet, {**ofa_sd, "blocks.21.conv.depth_conv.conv.conv.weight": torch.zeros(1)},
            "unexpected", "'blocks.21.conv.depth_conv.conv.conv.weight'")


def test_wrong_shape_raises(supernet, ofa_sd):
    sd = {**ofa_sd, "blocks.5.conv.depth_conv.se.fc.reduce.weight": torch.zeros(32, 144, 1, 1)}
    _raises(supernet, sd, "'blocks.5.conv.depth_conv.se.fc.reduce.weight'", "[32, 144, 1, 1]", "[40, 144, 1, 1]")

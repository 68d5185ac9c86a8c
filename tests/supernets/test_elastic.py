"""Elastic layers against hand-computed references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from search_spaces.mobilenet_v3 import se_channels
from supernets import create_supernet, recalibrate_bn
from supernets.elastic import ElasticBatchNorm2d, ElasticConv2d, ElasticDepthwiseConv2d, ElasticSqueezeExcite


def _seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_depthwise_kernel_is_centre_crop_when_transforms_are_identity():
    conv = ElasticDepthwiseConv2d(6, (3, 5, 7))
    with torch.no_grad():
        conv.weight.copy_(_seeded(6, 1, 7, 7))
    torch.testing.assert_close(conv.active_weight(4, 5), conv.weight[:4, :, 1:6, 1:6])
    torch.testing.assert_close(conv.active_weight(4, 3), conv.weight[:4, :, 2:5, 2:5])
    torch.testing.assert_close(conv.active_weight(6, 7), conv.weight)


def test_depthwise_kernel_applies_learned_transforms_step_by_step():
    conv = ElasticDepthwiseConv2d(2, (3, 5, 7))
    with torch.no_grad():
        conv.weight.copy_(_seeded(2, 1, 7, 7, seed=1))
        conv.transforms["7to5"].copy_(_seeded(25, 25, seed=2))
        conv.transforms["5to3"].copy_(_seeded(9, 9, seed=3))
    w5 = conv.weight[:, :, 1:6, 1:6].reshape(2, 25) @ conv.transforms["7to5"].T
    w3 = w5.reshape(2, 1, 5, 5)[:, :, 1:4, 1:4].reshape(2, 9) @ conv.transforms["5to3"].T
    torch.testing.assert_close(conv.active_weight(2, 5), w5.reshape(2, 1, 5, 5))
    torch.testing.assert_close(conv.active_weight(2, 3), w3.reshape(2, 1, 3, 3))
    with pytest.raises(ValueError, match=r"kernel 4 is not one of \[3, 5, 7\]"):
        conv.active_weight(2, 4)


def test_depthwise_forward_matches_conv2d_and_trains_the_transforms():
    conv = ElasticDepthwiseConv2d(4, (3, 5, 7), stride=2)
    torch.nn.init.normal_(conv.weight)
    x = _seeded(1, 3, 9, 9, seed=4)
    y = conv(x, 3)
    torch.testing.assert_close(y, F.conv2d(x, conv.active_weight(3, 3), None, 2, 1, 1, 3))
    y.sum().backward()
    assert conv.transforms["5to3"].grad.abs().sum() > 0
    assert conv.transforms["7to5"].grad.abs().sum() > 0


def test_elastic_conv_uses_leading_channels():
    conv = ElasticConv2d(8, 6, bias=True)
    torch.nn.init.normal_(conv.weight)
    torch.nn.init.normal_(conv.bias)
    x = _seeded(2, 5, 4, 4)
    torch.testing.assert_close(conv(x, 3), F.conv2d(x, conv.weight[:3, :5], conv.bias[:3]))


def test_elastic_batchnorm_updates_only_the_active_prefix():
    bn = ElasticBatchNorm2d(6)
    bn.train()
    x = _seeded(8, 4, 3, 3) * 3 + 1
    bn(x)
    assert torch.all(bn.running_mean[4:] == 0) and torch.all(bn.running_var[4:] == 1)
    expected = 0.1 * x.mean((0, 2, 3))
    torch.testing.assert_close(bn.running_mean[:4], expected)
    bn.eval()
    ref = F.batch_norm(x, bn.running_mean[:4], bn.running_var[:4], bn.weight[:4], bn.bias[:4], False)
    torch.testing.assert_close(bn(x), ref)


def test_elastic_se_hidden_width_follows_input_channels():
    se = ElasticSqueezeExcite(96)
    for i, p in enumerate(se.parameters()):
        torch.nn.init.normal_(p, generator=torch.Generator().manual_seed(i))
    assert se.reduce.weight.shape[0] == se_channels(96) == 24
    x = _seeded(1, 72, 5, 5)
    y = se(x)
    hidden = F.relu(F.conv2d(x.mean((2, 3), keepdim=True), se.reduce.weight[:24, :72], se.reduce.bias[:24]))
    scale = F.hardsigmoid(F.conv2d(hidden, se.expand.weight[:72, :24], se.expand.bias[:72]))
    torch.testing.assert_close(y, x * scale)


def test_same_seed_same_weights_and_different_seed_different_weights():
    a, b, c = (create_supernet("tiny_mbv3", seed=s) for s in (0, 0, 1))
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        torch.testing.assert_close(pa, pb, msg=name)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_recalibrate_bn_sets_running_stats_to_the_exact_batch_average():
    supernet = create_supernet("tiny_mbv3", seed=0)
    arch = supernet.space.smallest()
    batches = [_seeded(*supernet.input_shape(arch, 4), seed=s) for s in range(3)]
    assert recalibrate_bn(supernet, arch, iter(batches), n_batches=2) == 2
    stem_bn = supernet.stem[1]
    conv_out = [supernet.stem[0](b).detach() for b in batches[:2]]
    expected = torch.stack([c.mean((0, 2, 3)) for c in conv_out]).mean(0)
    torch.testing.assert_close(stem_bn.running_mean, expected)
    assert stem_bn.momentum == 0.1 and supernet.training
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_bn(supernet, arch, [], n_batches=1)

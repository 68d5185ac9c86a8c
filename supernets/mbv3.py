"""``OFAMobileNetV3Supernet``: the elastic MobileNetV3 of Once-for-All (kernel, depth, expand
ratio and resolution), for any ``MobileNetV3Space`` (``ofa_mbv3``, ``tiny_mbv3``)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from search_spaces import ArchConfig
from search_spaces.mobilenet_v3 import ActiveBlock, MobileNetV3Space, expanded_channels
from supernets.base import Supernet
from supernets.elastic import ElasticBatchNorm2d, ElasticConv2d, ElasticDepthwiseConv2d, ElasticSqueezeExcite
from supernets.static import InvertedResidual, MobileNetV3, activation, conv_bn_act


class ElasticInvertedResidual(nn.Module):
    """One block slot: weights for the largest kernel and expand ratio; runs an ``ActiveBlock``."""

    def __init__(self, cin: int, cout: int, *, kernel_sizes: tuple[int, ...], max_expand: int,
                 stride: int, act: str, se: bool) -> None:
        super().__init__()
        mid = expanded_channels(cin, max_expand)
        self.expand = ElasticConv2d(cin, mid)
        self.expand_bn = ElasticBatchNorm2d(mid)
        self.depthwise = ElasticDepthwiseConv2d(mid, kernel_sizes, stride=stride)
        self.depthwise_bn = ElasticBatchNorm2d(mid)
        self.se = ElasticSqueezeExcite(mid) if se else None
        self.project = ElasticConv2d(mid, cout)
        self.project_bn = nn.BatchNorm2d(cout)
        self.act = activation(act)
        self.residual = stride == 1 and cin == cout  # the same rule as ActiveBlock.residual

    def forward(self, x: torch.Tensor, block: ActiveBlock) -> torch.Tensor:
        out = self.act(self.expand_bn(self.expand(x, block.mid_channels)))
        out = self.act(self.depthwise_bn(self.depthwise(out, block.kernel)))
        if self.se is not None:
            out = self.se(out)
        out = self.project_bn(self.project(out, block.out_channels))
        return out + x if block.residual else out

    def extract(self, block: ActiveBlock) -> InvertedResidual:
        """A static block with this slot's weights sliced (and kernel-transformed) for ``block``."""
        mid, cin, cout = block.mid_channels, block.in_channels, block.out_channels
        static = InvertedResidual(cin, mid, cout, block.kernel, block.stride, block.act, block.se_channels)
        with torch.no_grad():
            static.expand[0].weight.copy_(self.expand.active_weight(cin, mid))
            _copy_bn(static.expand[1], self.expand_bn, mid)
            static.depthwise[0].weight.copy_(self.depthwise.active_weight(mid, block.kernel))
            _copy_bn(static.depthwise[1], self.depthwise_bn, mid)
            if self.se is not None:
                hidden = block.se_channels
                static.se.reduce.weight.copy_(self.se.reduce.active_weight(mid, hidden))
                static.se.reduce.bias.copy_(self.se.reduce.active_bias(hidden))
                static.se.expand.weight.copy_(self.se.expand.active_weight(hidden, mid))
                static.se.expand.bias.copy_(self.se.expand.active_bias(mid))
            static.project[0].weight.copy_(self.project.active_weight(mid, cout))
            _copy_bn(static.project[1], self.project_bn, cout)
        return static


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, channels: int) -> None:
    dst.weight.copy_(src.weight[:channels])
    dst.bias.copy_(src.bias[:channels])
    dst.running_mean.copy_(src.running_mean[:channels])
    dst.running_var.copy_(src.running_var[:channels])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.eps, dst.momentum = src.eps, src.momentum


class OFAMobileNetV3Supernet(Supernet):
    """Elastic kernel {3,5,7}, expand ratio, depth and resolution over a ``MobileNetV3Space``.

    ``seed`` alone determines the initial weights (He init, fan-out; BN γ=1, β=0, except γ=0 on
    the last BN of every residual branch).
    """

    def __init__(self, *, space: MobileNetV3Space, seed: int = 0, dropout_rate: float = 0.1) -> None:
        if not isinstance(space, MobileNetV3Space):
            raise ValueError(f"space must be a MobileNetV3Space, got {type(space).__name__}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
        super().__init__(space)
        s = space
        self.stem = conv_bn_act(s.in_channels, s.stem_width, 3, 2, "hswish")
        self.first_block = InvertedResidual(s.stem_width, s.stem_width, s.first_block_width, 3, 1, "relu", 0,
                                            expand=False)
        slots = []
        cin = s.first_block_width
        for stage in s.stages:
            for j in range(stage.max_depth):
                slots.append(ElasticInvertedResidual(
                    cin, stage.width, kernel_sizes=s.kernel_sizes, max_expand=max(s.expand_ratios),
                    stride=stage.stride if j == 0 else 1, act=stage.act, se=stage.se,
                ))
                cin = stage.width
        self.blocks = nn.ModuleList(slots)
        self.final_expand = conv_bn_act(cin, s.final_expand_width, 1, 1, "hswish")
        self.feature_mix = conv_bn_act(s.final_expand_width, s.last_channel, 1, 1, "hswish", bn=False)
        self.dropout = nn.Dropout(dropout_rate)
        self.classifier = nn.Linear(s.last_channel, s.num_classes)
        self._plan: list[ActiveBlock] = []
        self._init_weights(seed)
        self.set_active(space.largest())

    def _init_weights(self, seed: int) -> None:
        """He-normal (fan-out per group, so depthwise convs keep the signal's scale), BN γ=1 β=0,
        uniform linear weights, zero biases; ``seed`` is the only source of randomness."""
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, ElasticConv2d, ElasticDepthwiseConv2d)):
                    weight = module.weight
                    depthwise = isinstance(module, ElasticDepthwiseConv2d) or (
                        isinstance(module, nn.Conv2d) and module.groups == module.in_channels > 1)
                    fan_out = weight.shape[2] * weight.shape[3] * (1 if depthwise else weight.shape[0])
                    weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=gen)
                    if getattr(module, "bias", None) is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.BatchNorm2d):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
                elif isinstance(module, nn.Linear):
                    bound = 1.0 / module.in_features ** 0.5
                    module.weight.uniform_(-bound, bound, generator=gen)
                    module.bias.zero_()
            # Residual branches start as identity (last BN's γ = 0, Goyal et al. 2017): on
            # mnist-mini the largest subnet reached 90% val accuracy in 2 epochs instead of 73%.
            residual_bns = [self.first_block.project[1]] if self.first_block.residual else []
            residual_bns += [block.project_bn for block in self.blocks if block.residual]
            for bn in residual_bns:
                bn.weight.zero_()

    def _activate(self, arch: ArchConfig) -> None:
        self._plan = self.space.active_blocks(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_block(self.stem(x))
        for block in self._plan:
            x = self.blocks[block.slot](x, block)
        x = self.final_expand(x)
        x = self.feature_mix(x.mean((2, 3), keepdim=True))
        return self.classifier(self.dropout(torch.flatten(x, 1)))

    def extract(self, arch: ArchConfig) -> MobileNetV3:
        arch = self.space.validate(arch)
        blocks = [copy.deepcopy(self.first_block)]
        blocks += [self.blocks[b.slot].extract(b) for b in self.space.active_blocks(arch)]
        net = MobileNetV3(
            copy.deepcopy(self.stem), blocks, copy.deepcopy(self.final_expand), copy.deepcopy(self.feature_mix),
            copy.deepcopy(self.classifier), self.dropout.p,
        )
        return net.eval()

    def block_scopes(self, arch: ArchConfig) -> dict[str, tuple[str, ...]]:
        """Paths in :class:`~supernets.static.MobileNetV3`: ``blocks.0`` is the fixed first block,
        ``blocks.k`` the k-th active elastic block; the head is the final expand and feature mix."""
        active = self.space.active_blocks(self.space.validate(arch))
        scopes = {"stem": ("stem",), "block0": ("blocks.0",)}
        scopes.update({f"stage{b.stage + 1}.block{b.index}": (f"blocks.{k}",) for k, b in enumerate(active, start=1)})
        scopes.update({"head": ("final_expand", "feature_mix"), "classifier": ("classifier",)})
        return scopes

"""``ElasticViTSupernet``: the AutoFormer-style elastic vision transformer (patch size, embedding,
depth, heads and MLP ratio per layer) for any ``ViTSpace`` (``autoformer_t``, ``tiny_vit``).

Weight sharing is first-k slicing on every axis (``supernets.vit_elastic``); each patch size has
its own patch conv and position embedding. ``extract`` returns a
:class:`~supernets.vit_static.VisionTransformer` of plain torch layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from search_spaces import ArchConfig, ViTSpace
from supernets.base import Supernet
from supernets.vit_elastic import (ElasticLayerNorm, ElasticLinear, ElasticTokenEmbedding, ElasticTransformerLayer,
                                   LayerPlan)
from supernets.vit_static import VisionTransformer

INIT_STD = 0.02  # cls token and position embeddings (ViT/DeiT/AutoFormer)


@dataclass(frozen=True)
class ViTPlan:
    """The active subnet: patch size, embedding and one ``LayerPlan`` per active layer."""

    patch: int
    embed: int
    layers: tuple[LayerPlan, ...]


def vit_plan(space: ViTSpace, arch: ArchConfig) -> ViTPlan:
    """The ``ViTPlan`` of a validated ``arch`` (the sizes ``space.layers(arch)`` lists)."""
    embed = arch["embed"]
    layers = []
    for i in range(arch["depth"]):
        heads = arch[f"heads_{i}"]
        layers.append(LayerPlan(embed, heads, space.attention_width(arch, i) // heads, space.mlp_hidden(arch, i)))
    return ViTPlan(space.patch(arch), embed, tuple(layers))


class ElasticViTSupernet(Supernet):
    """Elastic patch size, embedding, depth, heads and MLP ratio over a ``ViTSpace``.

    ``seed`` alone determines the initial weights: Xavier-uniform linears (the original ViT's init;
    measured on mnist-mini, the largest tiny_vit trained alone reached 57% val top-1 after 300 AdamW
    steps against 32% with timm's truncated normal of std 0.02), truncated normal (std 0.02, cut at
    2 std) for the cls token and the position embeddings, truncated LeCun normal for the patch convs,
    zero biases, layer norms γ=1 β=0. ``dropout_rate`` is the dropout before the classifier.
    """

    def __init__(self, *, space: ViTSpace, seed: int = 0, dropout_rate: float = 0.0) -> None:
        if not isinstance(space, ViTSpace):
            raise ValueError(f"space must be a ViTSpace, got {type(space).__name__}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
        super().__init__(space)
        full = vit_plan(space, space.largest())  # every size grows with its option, so these are the maxima
        max_width = max(layer.width for layer in full.layers)
        max_hidden = max(layer.hidden for layer in full.layers)
        self.embed = ElasticTokenEmbedding(space.in_channels, full.embed, space.patch_sizes, space.resolution)
        self.layers = nn.ModuleList(ElasticTransformerLayer(full.embed, max_width, max_hidden, qkv_bias=space.qkv_bias)
                                    for _ in range(space.max_depth))
        self.norm = ElasticLayerNorm(full.embed)
        self.dropout = nn.Dropout(dropout_rate)
        self.classifier = ElasticLinear(full.embed, space.num_classes)
        self._plan = full
        self._init_weights(seed)
        self.set_active(space.largest())

    def _init_weights(self, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)

        def trunc_normal(t: torch.Tensor, std: float) -> None:
            nn.init.trunc_normal_(t, 0.0, std, -2 * std, 2 * std, generator=gen)

        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, ElasticLinear):
                    nn.init.xavier_uniform_(module.weight, generator=gen)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, ElasticLayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
                elif isinstance(module, ElasticTokenEmbedding):
                    for conv in module.proj.values():
                        trunc_normal(conv.weight, conv.weight[0].numel() ** -0.5)
                        conv.bias.zero_()
                    for pos in module.pos_embed.values():
                        trunc_normal(pos, INIT_STD)
                    trunc_normal(module.cls_token, INIT_STD)

    def no_weight_decay(self) -> set[str]:
        """Names of parameters that take no weight decay besides norms and biases: the cls token and
        the position embeddings (timm's convention)."""
        return {name for name, _ in self.named_parameters() if name.startswith(("embed.cls_token", "embed.pos_embed"))}

    def _activate(self, arch: ArchConfig) -> None:
        self._plan = vit_plan(self.space, arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plan = self._plan
        x = self.embed(x, plan.patch, plan.embed)
        for slot, layer in zip(self.layers, plan.layers):
            x = slot(x, layer)
        x = self.norm(x)
        return self.classifier(self.dropout(x[:, 0]), self.space.num_classes)

    def extract(self, arch: ArchConfig) -> VisionTransformer:
        arch = self.space.validate(arch)
        plan = vit_plan(self.space, arch)
        classifier = nn.Linear(plan.embed, self.space.num_classes)
        with torch.no_grad():
            classifier.weight.copy_(self.classifier.active_weight(plan.embed, self.space.num_classes))
            classifier.bias.copy_(self.classifier.active_bias(self.space.num_classes))
        net = VisionTransformer(self.embed.extract(plan.patch, plan.embed),
                                [slot.extract(layer) for slot, layer in zip(self.layers, plan.layers)],
                                self.norm.extract(plan.embed), classifier, self.dropout.p)
        return net.eval()

    def block_scopes(self, arch: ArchConfig) -> dict[str, tuple[str, ...]]:
        """Paths in :class:`~supernets.vit_static.VisionTransformer` (see its docstring)."""
        arch = self.space.validate(arch)
        scopes = {"embed": ("embed",)}
        for i in range(arch["depth"]):
            scopes[f"layer{i}.attn"] = (f"layers.{i}.attn",)
            scopes[f"layer{i}.mlp"] = (f"layers.{i}.mlp",)
        scopes.update({"head": ("norm",), "classifier": ("classifier",)})
        return scopes


"""Elastic transformer layers: one set of max-size weights, used at a smaller size chosen per call.

Every elastic axis takes the *first* ``n`` entries of the stored ones: embedding channels (of every
tensor that has them: patch conv, cls token, position embeddings, layer norms, linears), q/k/v
widths (the first ``heads * head_dim`` rows *of each of* q, k and v), MLP hidden units and layers.
Each layer gives the exact weights a static layer needs (``active_*``), which ``extract`` copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from supernets.vit_static import LAYER_NORM_EPS, AttentionBlock, MLPBlock, TokenEmbedding, TransformerLayer, attend


@dataclass(frozen=True)
class LayerPlan:
    """What one active transformer layer runs: embedding, heads × head_dim, MLP hidden units."""

    embed: int
    heads: int
    head_dim: int
    hidden: int

    @property
    def width(self) -> int:
        return self.heads * self.head_dim


class ElasticLinear(nn.Module):
    """A linear layer whose input and output sizes are elastic (the first ``out × in`` block)."""

    def __init__(self, max_in: int, max_out: int, *, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(max_out, max_in))  # the owner initialises
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None

    def active_weight(self, in_features: int, out_features: int) -> torch.Tensor:
        return self.weight[:out_features, :in_features]

    def active_bias(self, out_features: int) -> torch.Tensor | None:
        return None if self.bias is None else self.bias[:out_features]

    def forward(self, x: torch.Tensor, out_features: int) -> torch.Tensor:
        return F.linear(x, self.active_weight(x.shape[-1], out_features), self.active_bias(out_features))


class ElasticQKV(ElasticLinear):
    """q, k and v projections stacked in one weight: rows ``[0, W)`` are q, ``[W, 2W)`` k and
    ``[2W, 3W)`` v, with ``W`` the largest width. Width ``w`` takes the first ``w`` rows of each part
    (not the first ``3w`` rows, which would mix q with k and lose v)."""

    def __init__(self, max_in: int, max_width: int, *, bias: bool) -> None:
        super().__init__(max_in, 3 * max_width, bias=bias)
        self.max_width = max_width

    def active_weight(self, in_features: int, width: int) -> torch.Tensor:
        parts = self.weight.view(3, self.max_width, self.weight.shape[1])
        return parts[:, :width, :in_features].reshape(3 * width, in_features)

    def active_bias(self, width: int) -> torch.Tensor | None:
        return None if self.bias is None else self.bias.view(3, self.max_width)[:, :width].reshape(3 * width)


class ElasticLayerNorm(nn.Module):
    """Layer norm over the first ``c`` channels, with the first ``c`` affine pairs."""

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(max_channels))
        self.bias = nn.Parameter(torch.zeros(max_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], LAYER_NORM_EPS)

    def extract(self, channels: int) -> nn.LayerNorm:
        static = nn.LayerNorm(channels, eps=LAYER_NORM_EPS)
        with torch.no_grad():
            static.weight.copy_(self.weight[:channels])
            static.bias.copy_(self.bias[:channels])
        return static


class ElasticTokenEmbedding(nn.Module):
    """One patch conv and one position embedding per patch size, and one shared cls token.

    Why not one kernel resized per patch size (FlexiViT): with two or three patch sizes a kernel and
    a position table each cost little (tiny_vit: 3% of its parameters), and separate tensors need no
    resize rule that the static module would have to reproduce exactly. The token count differs per
    patch size, so the position tables could not be shared by first-k slicing anyway.
    """

    def __init__(self, in_channels: int, max_embed: int, patch_sizes: tuple[int, ...], resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.proj = nn.ModuleDict({f"patch{p}": nn.Conv2d(in_channels, max_embed, p, p, bias=True)
                                   for p in patch_sizes})
        self.pos_embed = nn.ParameterDict({f"patch{p}": nn.Parameter(torch.zeros(1, (resolution // p) ** 2 + 1,
                                                                                 max_embed))
                                           for p in patch_sizes})
        self.cls_token = nn.Parameter(torch.zeros(1, 1, max_embed))

    def forward(self, x: torch.Tensor, patch: int, embed: int) -> torch.Tensor:
        conv = self.proj[f"patch{patch}"]
        x = F.conv2d(x, conv.weight[:embed], conv.bias[:embed], stride=patch).flatten(2).transpose(1, 2)
        cls = self.cls_token[:, :, :embed].expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.pos_embed[f"patch{patch}"][:, :, :embed]

    def extract(self, patch: int, embed: int) -> TokenEmbedding:
        conv = self.proj[f"patch{patch}"]
        static = TokenEmbedding(conv.in_channels, embed, patch, self.resolution)
        with torch.no_grad():
            static.proj.weight.copy_(conv.weight[:embed])
            static.proj.bias.copy_(conv.bias[:embed])
            static.cls_token.copy_(self.cls_token[:, :, :embed])
            static.pos_embed.copy_(self.pos_embed[f"patch{patch}"][:, :, :embed])
        return static


class ElasticTransformerLayer(nn.Module):
    """One layer slot at its largest size; runs a ``LayerPlan``."""

    def __init__(self, max_embed: int, max_width: int, max_hidden: int, *, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = ElasticLayerNorm(max_embed)
        self.qkv = ElasticQKV(max_embed, max_width, bias=qkv_bias)
        self.proj = ElasticLinear(max_width, max_embed)
        self.norm2 = ElasticLayerNorm(max_embed)
        self.fc1 = ElasticLinear(max_embed, max_hidden)
        self.act = nn.GELU()
        self.fc2 = ElasticLinear(max_hidden, max_embed)

    def forward(self, x: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
        qkv = self.qkv(self.norm1(x), plan.width)
        x = x + self.proj(attend(qkv, plan.heads, plan.head_dim, plan.head_dim ** -0.5), plan.embed)
        return x + self.fc2(self.act(self.fc1(self.norm2(x), plan.hidden)), plan.embed)

    def extract(self, plan: LayerPlan) -> TransformerLayer:
        e, w, h = plan.embed, plan.width, plan.hidden
        attn = AttentionBlock(e, plan.heads, plan.head_dim, self.qkv.bias is not None)
        mlp = MLPBlock(e, h)
        attn.norm, mlp.norm = self.norm1.extract(e), self.norm2.extract(e)
        with torch.no_grad():
            for dst, src, cin, cout in ((attn.attn.qkv, self.qkv, e, w), (attn.attn.proj, self.proj, w, e),
                                        (mlp.fc1, self.fc1, e, h), (mlp.fc2, self.fc2, h, e)):
                dst.weight.copy_(src.active_weight(cin, cout))
                if dst.bias is not None:
                    dst.bias.copy_(src.active_bias(cout))
        return TransformerLayer(attn, mlp)

"""Static vision-transformer modules: what ``ElasticViTSupernet.extract`` returns. Plain torch layers
(attention written as explicit matmul/softmax/reshape ops, exact GELU, ``nn.LayerNorm``), so ONNX
export and TVM's Relax importers take them as they are. Layer for layer they mirror the rows of
``search_spaces.vit.ViTSpace.layers``.
"""

from __future__ import annotations

import torch
from torch import nn

LAYER_NORM_EPS = 1e-6  # timm/AutoFormer's ViT setting


class TokenEmbedding(nn.Module):
    """Patch conv (kernel = stride = ``patch``, bias) → flatten to tokens → prepend the cls token → add
    the position embedding. Rows ``patch_embed`` and ``tokens`` of the layer table."""

    def __init__(self, in_channels: int, embed: int, patch: int, resolution: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed, patch, patch, bias=True)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed))
        self.pos_embed = nn.Parameter(torch.zeros(1, (resolution // patch) ** 2 + 1, embed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)  # (B, N, C)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.pos_embed


class Attention(nn.Module):
    """Multi-head self-attention over ``(B, N, embed)``: qkv projection (q, k, v stacked in that
    order, ``heads * head_dim`` rows each), softmax(q kᵀ · head_dim^-0.5) v, output projection."""

    def __init__(self, embed: int, heads: int, head_dim: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(embed, 3 * heads * head_dim, bias=qkv_bias)
        self.proj = nn.Linear(heads * head_dim, embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(attend(self.qkv(x), self.heads, self.head_dim, self.scale))


def attend(qkv: torch.Tensor, heads: int, head_dim: int, scale: float) -> torch.Tensor:
    """``(B, N, 3 * heads * head_dim)`` stacked q, k, v → ``(B, N, heads * head_dim)`` attention output.
    Shared by the supernet and the static module, so both run the same ops."""
    b, n, _ = qkv.shape
    qkv = qkv.reshape(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, N, D)
    q, k, v = qkv[0], qkv[1], qkv[2]
    scores = (q @ k.transpose(-2, -1)) * scale
    out = scores.softmax(dim=-1) @ v  # (B, H, N, D)
    return out.transpose(1, 2).reshape(b, n, heads * head_dim)


class AttentionBlock(nn.Module):
    """``x + attn(norm(x))``: the layer table's block ``layer<i>.attn``."""

    def __init__(self, embed: int, heads: int, head_dim: int, qkv_bias: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed, eps=LAYER_NORM_EPS)
        self.attn = Attention(embed, heads, head_dim, qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x))


class MLPBlock(nn.Module):
    """``x + fc2(gelu(fc1(norm(x))))`` (exact GELU): the layer table's block ``layer<i>.mlp``."""

    def __init__(self, embed: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed, eps=LAYER_NORM_EPS)
        self.fc1 = nn.Linear(embed, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class TransformerLayer(nn.Module):
    """One pre-norm layer: ``attn`` then ``mlp`` (each with its residual)."""

    def __init__(self, attn: AttentionBlock, mlp: MLPBlock) -> None:
        super().__init__()
        self.attn = attn
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(x))


class VisionTransformer(nn.Module):
    """embed → layers → norm (all tokens) → the cls token's features → dropout → classifier.

    Block scopes (``ElasticViTSupernet.block_scopes``): ``embed`` is ``embed``, ``layer<i>.attn`` is
    ``layers.<i>.attn``, ``layer<i>.mlp`` is ``layers.<i>.mlp``, ``head`` is ``norm`` and
    ``classifier`` is ``classifier``."""

    def __init__(self, embed: TokenEmbedding, layers: list[TransformerLayer], norm: nn.LayerNorm,
                 classifier: nn.Linear, dropout_rate: float) -> None:
        super().__init__()
        self.embed = embed
        self.layers = nn.Sequential(*layers)
        self.norm = norm
        self.dropout = nn.Dropout(dropout_rate)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.layers(self.embed(x)))
        return self.classifier(self.dropout(x[:, 0]))

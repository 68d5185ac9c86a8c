"""Give a supernet weights that carry signal, for parity checks.

Freshly initialised MobileNetV3-like nets barely depend on their input, so an "outputs match"
check passes even for a wrong model (DESIGN.md). ``enliven`` randomises every weight that init
leaves constant or near zero (BN and LayerNorm affine pairs, biases, kernel-transform matrices, a
ViT's cls token and position embeddings) and recalibrates BN for one arch (when the supernet has
BN), so that different inputs give clearly different outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces import ArchConfig
from supernets.base import Supernet
from supernets.bn import recalibrate_bn
from supernets.elastic import ElasticConv2d, ElasticDepthwiseConv2d
from supernets.vit_elastic import ElasticLayerNorm, ElasticLinear, ElasticTokenEmbedding


def perturb_constant_weights(supernet: Supernet, *, seed: int) -> None:
    """Randomise BN and LayerNorm γ/β, conv and linear biases, kernel-transform matrices (near
    identity), cls tokens and position embeddings; redraw elastic linear weights at std 1/√fan-in."""
    gen = torch.Generator().manual_seed(seed)

    def noise(t: torch.Tensor, scale: float) -> torch.Tensor:
        return scale * torch.randn(t.shape, generator=gen)

    with torch.no_grad():
        for module in supernet.modules():
            if (isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine) or (
                    isinstance(module, (nn.LayerNorm, ElasticLayerNorm)) and module.weight is not None):
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.copy_(noise(module.bias, 0.2))
            elif isinstance(module, ElasticTokenEmbedding):
                for token in (module.cls_token, *module.pos_embed.values()):
                    token.copy_(noise(token, 0.2))
            elif isinstance(module, ElasticDepthwiseConv2d):
                for matrix in module.transforms.values():
                    matrix.add_(noise(matrix, 0.1))
            elif isinstance(module, ElasticLinear):  # ViT init (std 0.02) all but hides the input at small widths
                module.weight.copy_(noise(module.weight, module.weight.shape[1] ** -0.5))
                if module.bias is not None:
                    module.bias.copy_(noise(module.bias, 0.1))
            elif isinstance(module, (nn.Conv2d, nn.Linear, ElasticConv2d)) and module.bias is not None:
                module.bias.copy_(noise(module.bias, 0.1))


def enliven(supernet: Supernet, arch: ArchConfig, *, seed: int, batch: int = 4) -> None:
    """Perturb constant weights, then recalibrate BN (if any) for ``arch`` on random inputs; leaves
    eval mode."""
    perturb_constant_weights(supernet, seed=seed)
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in supernet.modules()):
        gen = torch.Generator().manual_seed(seed + 1)
        inputs = torch.randn(supernet.input_shape(arch, batch), generator=gen)
        recalibrate_bn(supernet, arch, [inputs], 1)
    supernet.eval()

"""Static MobileNetV3 modules: what ``extract`` returns. Plain torch layers, no elastic code,
ready for ONNX export and TVM. Layer for layer they mirror the space's ``LayerSpec`` rows."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATION_MODULES = {"relu": nn.ReLU, "hswish": nn.Hardswish}


def activation(name: str) -> nn.Module:
    return ACTIVATION_MODULES[name]() if name != "none" else nn.Identity()


class SqueezeExcite(nn.Module):
    """x * h_sigmoid(expand(relu(reduce(mean_hw(x)))))."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))
        return x * nn.functional.hardsigmoid(self.expand(scale))


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int, act: str, *, groups: int = 1,
                bn: bool = True, bias: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=bias)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(activation(act))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """[1×1 expand] → k×k depthwise [→ SE] → 1×1 project [+ input]."""

    def __init__(self, cin: int, mid: int, cout: int, kernel: int, stride: int, act: str,
                 se_hidden: int, *, expand: bool = True) -> None:
        super().__init__()
        self.expand = conv_bn_act(cin, mid, 1, 1, act) if expand else None
        self.depthwise = conv_bn_act(mid, mid, kernel, stride, act, groups=mid)
        self.se = SqueezeExcite(mid, se_hidden) if se_hidden else None
        self.project = conv_bn_act(mid, cout, 1, 1, "none")
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.residual else out


class MobileNetV3(nn.Module):
    """stem → blocks → final expand → global pool → feature mix → dropout → classifier."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], final_expand: nn.Module,
                 feature_mix: nn.Module, classifier: nn.Linear, dropout_rate: float) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = final_expand
        self.feature_mix = feature_mix
        self.dropout = nn.Dropout(dropout_rate)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(self.blocks(self.stem(x)))
        x = self.feature_mix(x.mean((2, 3), keepdim=True))
        return self.classifier(self.dropout(torch.flatten(x, 1)))

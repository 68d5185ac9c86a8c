"""Elastic layers: one set of max-size weights, used at a smaller size chosen per call.

Channels are always the *first* ``n`` of the stored ones (OFA's convention; training may
reorder channels by importance to make that prefix the best one). Each layer also gives the
exact weights a static layer needs (``active_*``), which is what ``extract`` copies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.mobilenet_v3 import se_channels


class ElasticConv2d(nn.Module):
    """A dense conv with a fixed kernel whose input and output channel counts are elastic."""

    def __init__(self, max_in: int, max_out: int, *, kernel: int = 1, stride: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.weight = nn.Parameter(torch.zeros(max_out, max_in, kernel, kernel))  # the owner initialises
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None

    def active_weight(self, in_channels: int, out_channels: int) -> torch.Tensor:
        return self.weight[:out_channels, :in_channels]

    def active_bias(self, out_channels: int) -> torch.Tensor | None:
        return None if self.bias is None else self.bias[:out_channels]

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        weight = self.active_weight(x.size(1), out_channels)
        return F.conv2d(x, weight, self.active_bias(out_channels), self.stride, self.kernel // 2)


class ElasticDepthwiseConv2d(nn.Module):
    """Depthwise conv with elastic channels and an elastic kernel (OFA's kernel transformation).

    A smaller kernel is the centre crop of the next larger one, passed through a learned
    ``k²×k²`` matrix (initialised to identity), step by step from the largest kernel down.
    """

    def __init__(self, max_channels: int, kernel_sizes: tuple[int, ...], *, stride: int = 1) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(set(kernel_sizes)))
        self.max_kernel = self.kernel_sizes[-1]
        self.stride = stride
        self.weight = nn.Parameter(torch.zeros(max_channels, 1, self.max_kernel, self.max_kernel))
        self.transforms = nn.ParameterDict({
            self._key(big, small): nn.Parameter(torch.eye(small * small))
            for small, big in zip(self.kernel_sizes, self.kernel_sizes[1:])
        })

    @staticmethod
    def _key(big: int, small: int) -> str:
        return f"{big}to{small}"

    def active_weight(self, channels: int, kernel: int) -> torch.Tensor:
        if kernel not in self.kernel_sizes:
            raise ValueError(f"kernel {kernel} is not one of {list(self.kernel_sizes)}")
        weight = self.weight[:channels]
        for big, small in zip(self.kernel_sizes[::-1], self.kernel_sizes[-2::-1]):
            if big <= kernel:
                break
            start = (big - small) // 2
            crop = weight[:, :, start:start + small, start:start + small].reshape(channels, small * small)
            weight = F.linear(crop, self.transforms[self._key(big, small)]).reshape(channels, 1, small, small)
        return weight

    def forward(self, x: torch.Tensor, kernel: int) -> torch.Tensor:
        channels = x.size(1)
        return F.conv2d(x, self.active_weight(channels, kernel), None, self.stride, kernel // 2, 1, channels)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first ``C`` channels of its input; updates the prefix of its running stats."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.size(1)
        if channels == self.num_features:
            return super().forward(x)
        momentum = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(
            x, self.running_mean[:channels], self.running_var[:channels], self.weight[:channels],
            self.bias[:channels], use_batch_stats, momentum, self.eps,
        )


class ElasticSqueezeExcite(nn.Module):
    """Squeeze-excite whose hidden width follows its input: ``se_channels(C)``."""

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        hidden = se_channels(max_channels)
        self.reduce = ElasticConv2d(max_channels, hidden, bias=True)
        self.expand = ElasticConv2d(hidden, max_channels, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.size(1)
        scale = x.mean((2, 3), keepdim=True)
        scale = F.relu(self.reduce(scale, se_channels(channels)))
        scale = F.hardsigmoid(self.expand(scale, channels))
        return x * scale

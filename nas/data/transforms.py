"""The few image transforms the loaders need, written with torch ops (torchvision is not usable here).

Pixel tensors are uint8 or float in 0..255 until :func:`normalize`; randomness comes only from the
``torch.Generator`` passed in.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

EVAL_CROP_FRACTION = 0.875  # ImageNet-style eval: resize the short side to size / 0.875, centre-crop size
RRC_SCALE = (0.25, 1.0)  # area share of the random-resized crop ("lite": one draw, clamped, no retries)
RRC_RATIO = (3 / 4, 4 / 3)


def normalize(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """0..255 pixels (N,C,H,W) to float32 ``(x / 255 - mean) / std`` per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return images.to(torch.float32).div_(255.0).sub_(m).div_(s)


def pad_random_crop(images: Tensor, pad: int, generator: torch.Generator) -> Tensor:
    """Zero-pad a batch (N,C,H,W) by ``pad`` px and crop every image back to H x W at a random offset."""
    n, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def random_hflip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image of a batch (N,C,H,W) left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def resize(image: Tensor, height: int, width: int) -> Tensor:
    """Bilinear (antialiased) resize of one image (C,H,W) to float 0..255."""
    out = F.interpolate(
        image[None].to(torch.float32), size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )
    return out[0].clamp_(0.0, 255.0)


def random_resized_crop(image: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Crop a random box (area share in ``RRC_SCALE``, aspect in ``RRC_RATIO``) and resize it to size x size.

    One draw, clamped to the image, instead of torchvision's up-to-ten rejection tries.
    """
    _, h, w = image.shape
    u = torch.rand(4, generator=generator).tolist()
    area = h * w * (RRC_SCALE[0] + (RRC_SCALE[1] - RRC_SCALE[0]) * u[0])
    lo, hi = math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])
    ratio = math.exp(lo + (hi - lo) * u[1])
    cw = min(w, max(1, round(math.sqrt(area * ratio))))
    ch = min(h, max(1, round(math.sqrt(area / ratio))))
    top = min(int(u[2] * (h - ch + 1)), h - ch)
    left = min(int(u[3] * (w - cw + 1)), w - cw)
    return resize(image[:, top : top + ch, left : left + cw], size, size)


def resize_center_crop(image: Tensor, size: int) -> Tensor:
    """Resize the short side of one image (C,H,W) to ``size / EVAL_CROP_FRACTION``, centre-crop size x size."""
    _, h, w = image.shape
    short = math.ceil(size / EVAL_CROP_FRACTION)
    nh, nw = (short, max(short, round(w * short / h))) if h <= w else (max(short, round(h * short / w)), short)
    out = resize(image, nh, nw)
    top, left = (nh - size) // 2, (nw - size) // 2
    return out[:, top : top + size, left : left + size]

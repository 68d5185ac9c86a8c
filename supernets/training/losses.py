"""Losses for supernet training: label-smoothed cross-entropy and distillation on soft labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-Σ p_teacher · log softmax(logits)`` (KD with temperature 1).

    Equal to KL(teacher ‖ student) plus the teacher's entropy, so its gradient is the KD gradient.
    """
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def hard_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def resize_batch(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resize of an NCHW batch to ``resolution``² (a no-op when it already is)."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=images.shape[-1] > resolution)

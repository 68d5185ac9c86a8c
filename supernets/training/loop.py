"""The training loop shared by all strategies: stage lookup, cosine learning rate per stage (after
an optional linear warm-up), optional gradient averaging across processes, one optimiser step per
batch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from supernets.base import Supernet
from supernets.training.strategies import Stage, TrainingStrategy


def cosine_lr(base_lr: float, step: int, total: int) -> float:
    """Cosine decay from ``base_lr`` at step 0 towards 0 at ``total``."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def scheduled_lr(base_lr: float, global_step: int, stage: Stage, warmup_steps: int = 0) -> float:
    """The learning rate of ``global_step``: cosine decay within ``stage``, times a linear warm-up
    factor ``(global_step + 1) / warmup_steps`` over the run's first ``warmup_steps`` steps (none
    when 0, which gives exactly ``cosine_lr``)."""
    lr = cosine_lr(base_lr, global_step - stage.start, stage.steps)
    if global_step < warmup_steps:
        lr *= (global_step + 1) / warmup_steps
    return lr


def stage_at(plan: list[Stage], step: int) -> Stage:
    for stage in plan:
        if stage.start <= step < stage.end:
            return stage
    return plan[-1]


def average_gradients(module: nn.Module) -> None:
    """All-reduce and average the gradients of every parameter that has one (one flat buffer).

    Every process must run the same subnets, so the set of parameters with gradients agrees.
    """
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


@dataclass
class StepInfo:
    global_step: int
    loss: float
    lr: float
    stage: Stage


def train_steps(
    supernet: Supernet,
    strategy: TrainingStrategy,
    plan: list[Stage],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    *,
    base_lr: float,
    rng: np.random.Generator,
    global_step: int,
    device: torch.device,
    distributed: bool = False,
    warmup_steps: int = 0,
    on_stage_start: Callable[[Stage], None] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> tuple[int, float]:
    """Train one pass over ``batches`` starting at ``global_step``; returns the new global step
    and the mean loss. ``on_stage_start`` runs before the first step of every stage entered
    here (including the stage a resumed run starts in). ``warmup_steps``: see :func:`scheduled_lr`."""
    supernet.train()
    current: Stage | None = None
    losses = []
    for images, labels in batches:
        stage = stage_at(plan, global_step)
        if stage != current:
            if on_stage_start is not None:
                on_stage_start(stage)
            current = stage
        lr = scheduled_lr(base_lr, global_step, stage, warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss = strategy.step(supernet, images.to(device), labels.to(device), stage, rng)
        if distributed:
            average_gradients(supernet)
        optimizer.step()
        global_step += 1
        losses.append(loss)
        if on_step is not None:
            on_step(StepInfo(global_step, loss, lr, stage))
    return global_step, float(np.mean(losses)) if losses else float("nan")

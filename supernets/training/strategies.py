"""Supernet training strategies: the sandwich rule with in-place distillation, and progressive
shrinking. A strategy decides *which* subnets a batch trains and with which loss; the loop in
``supernets.training.loop`` owns optimisers, learning rates and gradient synchronisation.

Contract of ``TrainingStrategy``:
- ``plan(total_steps, space)`` splits the run into named ``Stage``s covering ``[0, total_steps)``.
- ``step(supernet, images, labels, stage, rng)`` runs forward and backward for one batch:
  gradients *accumulate* into ``.grad``; it never calls ``optimizer.step``/``zero_grad``. It picks
  one random resolution per step from the space's ``resolutions`` (elastic resolution; a space with
  one resolution always gets that one) and restores the supernet's active arch before returning.
  It returns the mean loss over the subnets it ran.
- The supernet's space is an ``ElasticFamily`` (a CNN such as ``MobileNetV3Space`` or a
  ``ViTSpace``): its ``ELASTIC_DIMS`` and ``SHRINK_STAGES`` name what varies, and
  ``input_shape(arch)`` the resolution a batch is resized to. ``plan(total_steps, space)`` takes that
  space; without one it plans for ``MobileNetV3Space`` (the stages of earlier runs).
- All randomness comes from ``rng`` (a ``numpy.random.Generator``) and the global torch RNG
  that dropout uses, which the loop seeds per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from search_spaces import ArchConfig, ElasticFamily, MobileNetV3Space
from supernets.base import Supernet
from supernets.training.losses import hard_loss, resize_batch, soft_cross_entropy


@dataclass(frozen=True)
class Stage:
    """A named part of training: steps ``[start, end)`` and the elastic dims it samples."""

    name: str
    start: int
    end: int
    dims: tuple[str, ...]

    @property
    def steps(self) -> int:
        return self.end - self.start


class TrainingStrategy:
    name = "base"

    def plan(self, total_steps: int, space: ElasticFamily | None = None) -> list[Stage]:
        raise NotImplementedError

    def step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor, stage: Stage,
             rng: np.random.Generator) -> float:
        raise NotImplementedError

    @staticmethod
    def _space(supernet: Supernet) -> ElasticFamily:
        if not isinstance(supernet.space, ElasticFamily):
            raise ValueError(f"this strategy trains supernets over an elastic family (MobileNetV3Space, ViTSpace), "
                             f"got space {supernet.space.name!r} ({type(supernet.space).__name__})")
        return supernet.space

    @staticmethod
    def _resized(space: ElasticFamily, arch: ArchConfig, images: torch.Tensor) -> torch.Tensor:
        return resize_batch(images, space.input_shape(arch)[1])

    @classmethod
    def _run(cls, supernet: Supernet, arch: ArchConfig, images: torch.Tensor) -> torch.Tensor:
        with supernet.active(arch):
            return supernet(cls._resized(supernet.space, arch, images))


class SandwichRule(TrainingStrategy):
    """BigNAS/AttentiveNAS: per step the largest subnet learns from the labels, and the smallest
    plus ``n_random`` random subnets learn from the largest's soft labels (in-place distillation)."""

    name = "sandwich"

    def __init__(self, *, n_random: int = 1, label_smoothing: float = 0.1) -> None:
        if n_random < 0:
            raise ValueError(f"n_random must be >= 0, got {n_random}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.n_random = n_random
        self.label_smoothing = label_smoothing

    def plan(self, total_steps: int, space: ElasticFamily | None = None) -> list[Stage]:
        dims = (space or MobileNetV3Space).ELASTIC_DIMS
        return [Stage("sandwich", 0, total_steps, dims)]

    def step(self, supernet, images, labels, stage, rng):
        space = self._space(supernet)
        r = int(rng.choice(space.resolutions))
        largest = space.with_resolution(space.largest(), r)
        logits = self._run(supernet, largest, images)
        loss = hard_loss(logits, labels, self.label_smoothing)
        loss.backward()
        soft = torch.softmax(logits.detach(), dim=1)
        losses = [loss.item()]
        others = [space.with_resolution(space.smallest(), r)]
        others += [space.with_resolution(space.sample(rng), r) for _ in range(self.n_random)]
        for arch in others:
            kd = soft_cross_entropy(self._run(supernet, arch, images), soft)
            kd.backward()
            losses.append(kd.item())
        return float(np.mean(losses))


class ProgressiveShrinking(TrainingStrategy):
    """Once-for-All: train the full network, then open the space's ``SHRINK_STAGES`` one at a time
    (MobileNetV3: kernel, then depth, then expand ratio, with resolution elastic throughout; ViT:
    MLP ratio, then heads, then depth, embedding and patch size). After the first stage every subnet
    also distils from a frozen copy of the full network (``teacher``), set by the caller with
    ``set_teacher``. ``fractions`` are the stages' shares of the steps (four stages).
    """

    name = "ps"
    STAGES = MobileNetV3Space.SHRINK_STAGES  # the stages ``plan`` gives without a space

    def __init__(self, *, fractions: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25), kd_ratio: float = 1.0,
                 label_smoothing: float = 0.1) -> None:
        if len(fractions) != len(self.STAGES) or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1):
            raise ValueError(f"fractions must be {len(self.STAGES)} non-negative numbers summing to 1, got {fractions}")
        if kd_ratio < 0:
            raise ValueError(f"kd_ratio must be >= 0, got {kd_ratio}")
        self.fractions = tuple(fractions)
        self.kd_ratio = kd_ratio
        self.label_smoothing = label_smoothing
        self.teacher: nn.Module | None = None

    def plan(self, total_steps: int, space: ElasticFamily | None = None) -> list[Stage]:
        stages = self.STAGES if space is None else space.SHRINK_STAGES
        if len(stages) != len(self.fractions):
            raise ValueError(f"space {space.name!r} has {len(stages)} progressive-shrinking stages, "
                             f"but {len(self.fractions)} fractions were given")
        bounds = np.round(np.cumsum((0.0,) + self.fractions) * total_steps).astype(int)
        return [Stage(name, int(a), int(b), dims)
                for (name, dims), a, b in zip(stages, bounds[:-1], bounds[1:]) if b > a]

    def set_teacher(self, teacher: nn.Module | None) -> None:
        """The frozen full network that stages after ``full`` distil from (eval mode, no grads)."""
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        self.teacher = teacher

    def step(self, supernet, images, labels, stage, rng):
        space = self._space(supernet)
        only_resolution = not set(stage.dims) - {"r"}  # the full network, at a random resolution
        arch = space.largest() if only_resolution else space.sample_elastic(rng, stage.dims)
        arch = space.with_resolution(arch, int(rng.choice(space.resolutions)))
        resized = self._resized(space, arch, images)
        with supernet.active(arch):
            logits = supernet(resized)
        loss = hard_loss(logits, labels, self.label_smoothing)
        if stage.name != "full" and self.kd_ratio > 0:
            if self.teacher is None:
                raise RuntimeError(f"stage {stage.name!r} distils from a teacher; call set_teacher first")
            with torch.no_grad():
                soft = torch.softmax(self.teacher(resized), dim=1)
            loss = loss + self.kd_ratio * soft_cross_entropy(logits, soft)
        loss.backward()
        return loss.item()


STRATEGIES = {"sandwich": SandwichRule, "ps": ProgressiveShrinking}

"""``DataSource``: what a loaded dataset offers, and the deterministic batch plans behind it.

A source owns an *image store* (in-memory tensors or a lazy file list) that turns index arrays into
normalised batches; the source decides which indices go into which batch, for which rank.
Nothing here keeps random state: every order comes from ``(seed, epoch[, rank])``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Protocol

import numpy as np

from .split import AUGMENT, CALIBRATE, SHUFFLE, check_int, derive_rng, derive_seed

if TYPE_CHECKING:
    import torch
    from torch import Tensor


class ImageStore(Protocol):
    """Turns indices into one batch. ``generator=None`` means no augmentation (val, calibration).

    Returns ``(images, labels)``: float32 NCHW normalised images and int64 labels.
    """

    n_train: int
    n_val: int

    def load(
        self, split: str, indices: np.ndarray, *, generator: "torch.Generator | None"
    ) -> tuple["Tensor", "Tensor"]: ...


def steps_per_epoch(n: int, *, batch_size: int, world_size: int = 1, drop_last: bool = True) -> int:
    """Batches each rank gets per epoch from ``n`` items (see :func:`shard_indices`)."""
    batch_size = check_int("batch_size", batch_size, minimum=1)
    world_size = check_int("world_size", world_size, minimum=1)
    if drop_last:
        steps = (n // batch_size) // world_size
        if steps == 0:
            raise ValueError(
                f"batch_size={batch_size} with world_size={world_size} leaves no full batch per rank "
                f"from {n} training images; use a smaller batch_size"
            )
        return steps
    return math.ceil(math.ceil(n / batch_size) / world_size)


def shard_indices(
    n: int, *, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1, drop_last: bool = True
) -> list[np.ndarray]:
    """The index batches of one rank for one epoch.

    The permutation depends on ``(seed, epoch)`` only, so every rank sees the same one. It is cut into
    ``batch_size`` chunks and rank ``r`` takes chunks ``r, r + world_size, ...``, as many as every rank
    can get. With ``drop_last`` the leftover chunks and the last short chunk are dropped. Without it
    every index appears at least once: when the chunk count is not a multiple of ``world_size`` the
    permutation wraps around (like torch's ``DistributedSampler``) to fill whole chunks; otherwise
    the very last chunk may be short.
    """
    seed = check_int("seed", seed, minimum=0)
    epoch = check_int("epoch", epoch, minimum=0)
    world_size = check_int("world_size", world_size, minimum=1)
    rank = check_int("rank", rank, minimum=0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size={world_size}, got {rank}")
    steps = steps_per_epoch(n, batch_size=batch_size, world_size=world_size, drop_last=drop_last)
    perm = derive_rng(SHUFFLE, seed, epoch).permutation(n)
    if not drop_last and math.ceil(n / batch_size) % world_size:
        perm = np.resize(perm, steps * world_size * batch_size)  # np.resize repeats cyclically
    chunks = (step * world_size + rank for step in range(steps))
    return [perm[c * batch_size : (c + 1) * batch_size] for c in chunks]


@dataclass(frozen=True, kw_only=True)
class DataSource:
    """A loaded image-classification dataset; build one with :func:`nas.data.load_data`.

    Every batch is ``(images, labels)``: float32 NCHW images of ``in_channels`` x ``image_size`` x
    ``image_size``, normalised with the dataset's mean/std, and int64 labels in ``0..num_classes-1``.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    n_train: int
    n_val: int
    class_names: tuple[str, ...] = ()
    _store: ImageStore = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if (self.n_train, self.n_val) != (self._store.n_train, self._store.n_val):
            raise ValueError(
                f"n_train/n_val ({self.n_train}/{self.n_val}) disagree with the store "
                f"({self._store.n_train}/{self._store.n_val})"
            )
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names for num_classes={self.num_classes}")

    def steps_per_epoch(self, *, batch_size: int, world_size: int = 1, drop_last: bool = True) -> int:
        """Batches per rank per epoch, as :meth:`train_batches` yields them."""
        return steps_per_epoch(self.n_train, batch_size=batch_size, world_size=world_size, drop_last=drop_last)

    def train_batches(
        self, *, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1, drop_last: bool = True
    ) -> Iterator[tuple["Tensor", "Tensor"]]:
        """Augmented training batches of one rank (sharding: :func:`shard_indices`).

        The order depends on ``(seed, epoch)``; the augmentation draws from one ``torch.Generator``
        seeded from ``(seed, epoch, rank)``. Arguments are checked when this is called.
        """
        plan = shard_indices(
            self.n_train, batch_size=batch_size, seed=seed, epoch=epoch, rank=rank, world_size=world_size,
            drop_last=drop_last,
        )
        return self._train_iter(plan, derive_seed(AUGMENT, seed, epoch, rank))

    def _train_iter(self, plan: list[np.ndarray], aug_seed: int) -> Iterator[tuple["Tensor", "Tensor"]]:
        import torch

        generator = torch.Generator().manual_seed(aug_seed)
        for indices in plan:
            yield self._store.load("train", indices, generator=generator)

    def val_batches(self, *, batch_size: int) -> Iterator[tuple["Tensor", "Tensor"]]:
        """Validation batches in a fixed order, not augmented; the last one may be short."""
        batch_size = check_int("batch_size", batch_size, minimum=1)
        order = np.arange(self.n_val)
        return self._plain_iter("val", [order[i : i + batch_size] for i in range(0, self.n_val, batch_size)])

    def calib_batches(self, *, batch_size: int, seed: int) -> Iterator[tuple["Tensor", "Tensor"]]:
        """One pass over the training images, not augmented, in an order seeded by ``seed``.

        For BatchNorm recalibration: every batch is full (the short tail is dropped unless the
        training set is smaller than one batch). Take as many batches as needed.
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        order = derive_rng(CALIBRATE, seed).permutation(self.n_train)
        n_full = max(self.n_train // batch_size, 1)
        return self._plain_iter("train", [order[i * batch_size : (i + 1) * batch_size] for i in range(n_full)])

    def _plain_iter(self, split: str, plan: list[np.ndarray]) -> Iterator[tuple["Tensor", "Tensor"]]:
        for indices in plan:
            yield self._store.load(split, indices, generator=None)

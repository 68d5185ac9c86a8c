"""Image stores: indices in, normalised batches out (see ``source.ImageStore``).

``TensorStore`` keeps small datasets (MNIST, CIFAR) in memory as uint8; ``FileStore`` decodes
image files with Pillow only when a batch asks for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .errors import DataError
from .transforms import normalize, pad_random_crop, random_hflip, random_resized_crop, resize_center_crop


@dataclass(frozen=True, eq=False)
class TensorStore:
    """In-memory uint8 images (N,C,H,W). Augmentation: random crop with ``pad`` px zero padding,
    then, if ``flip``, a random horizontal flip (off for digits, where a mirror changes the class)."""

    train_images: Tensor
    train_labels: Tensor
    val_images: Tensor
    val_labels: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool
    pad: int = 4

    @property
    def n_train(self) -> int:
        return int(self.train_images.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.val_images.shape[0])

    def load(self, split: str, indices: np.ndarray, *, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        if split == "train":
            images, labels = self.train_images, self.train_labels
        else:
            images, labels = self.val_images, self.val_labels
        idx = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        x = images[idx]
        if generator is not None:
            x = pad_random_crop(x, self.pad, generator)
            if self.flip:
                x = random_hflip(x, generator)
        return normalize(x, self.mean, self.std), labels[idx]


def decode_rgb(path: str) -> Tensor:
    """One image file as a uint8 (3,H,W) tensor; ``DataError`` naming the file if Pillow cannot read it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            array = np.array(im.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError...
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"imagefolder: cannot decode image {path} ({reason})") from None
    return torch.from_numpy(array).permute(2, 0, 1)


@dataclass(frozen=True, eq=False)
class FileStore:
    """Image files decoded lazily per batch and brought to ``image_size`` x ``image_size``:
    train by a random-resized crop plus horizontal flip, val by resize-short-side and centre crop."""

    train_files: tuple[str, ...]
    train_labels: Tensor
    val_files: tuple[str, ...]
    val_labels: Tensor
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def n_train(self) -> int:
        return len(self.train_files)

    @property
    def n_val(self) -> int:
        return len(self.val_files)

    def load(self, split: str, indices: np.ndarray, *, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        files, labels = (self.train_files, self.train_labels) if split == "train" else (self.val_files, self.val_labels)
        idx = np.asarray(indices, dtype=np.int64)
        size = self.image_size
        if generator is None:
            images = [resize_center_crop(decode_rgb(files[i]), size) for i in idx]
        else:
            images = [random_resized_crop(decode_rgb(files[i]), size, generator) for i in idx]
        x = torch.stack(images)
        if generator is not None:
            x = random_hflip(x, generator)
        return normalize(x, self.mean, self.std), labels[torch.from_numpy(idx)]

"""``digits``: scikit-learn's handwritten digits (1,797 images, 8 x 8, 16 grey levels), shipped inside
the scikit-learn wheel (``sklearn.datasets.load_digits`` reads a bundled file; no download).

The images are scaled to MNIST's 28 x 28 (bilinear) and 0..255, so every MNIST-sized space and
supernet (``tiny_mbv3``) runs on them unchanged: a second, different task beside ``mnist-mini``
(different writers, resolution and preprocessing), e.g. for multi-task co-design.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError
from .source import DataSource
from .split import stratified_split

DIGITS_SIZE = 28


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (1797, 28, 28), labels int64 (1797,))``."""
    import torch

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits dataset ships with scikit-learn, which is not installed; pip install scikit-learn") \
            from None
    bunch = load_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0))[:, None]  # (N,1,8,8), 0..255
    big = torch.nn.functional.interpolate(small, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear",
                                          align_corners=False)
    images = big[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return images, bunch.target.astype(np.int64)


def load_digits_source(*, seed: int, val_fraction: float) -> DataSource:
    """A stratified split (from ``seed``) of the 1,797 images."""
    import torch

    from ._image_stores import TensorStore

    images, labels = read_digits()
    train, val = stratified_split(labels, val_fraction=val_fraction, seed=seed)
    x, y = torch.from_numpy(images[:, None]), torch.from_numpy(labels)
    pixels = images[train].astype(np.float64) / 255.0  # normalised by the training split alone
    store = TensorStore(train_images=x[train], train_labels=y[train], val_images=x[val], val_labels=y[val],
                        mean=(float(pixels.mean()),), std=(float(pixels.std()),), flip=False)
    return DataSource(name="digits", num_classes=10, in_channels=1, image_size=DIGITS_SIZE, n_train=store.n_train,
                      n_val=store.n_val, class_names=tuple(str(d) for d in range(10)), _store=store)

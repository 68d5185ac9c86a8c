"""``imagefolder:PATH``: class folders of image files, decoded lazily per batch.

Layouts, tried in this order:
  PATH/train/<class>/*.png|jpg|jpeg and PATH/val/<class>/...   (val classes must be train classes)
  PATH/train/<class>/...  alone                                 (split stratified by seed/val_fraction)
  PATH/<class>/...                                              (split stratified by seed/val_fraction)
Classes are the folder names in sorted order; hidden entries (starting with '.') are ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataError
from .source import DataSource
from .split import stratified_split

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_LAYOUT = "expected PATH/train/<class>/*.png|jpg|jpeg plus PATH/val/<class>/..., or PATH/<class>/*.png|jpg|jpeg"


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_classes(folder: Path, *, min_classes: int = 2) -> dict[str, list[str]]:
    """``{class name: sorted image paths}`` for the class folders directly under ``folder``."""
    classes = {}
    for sub in _subdirs(folder):
        files = sorted(
            str(p) for p in sub.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise DataError(f"imagefolder: class folder {sub} has no .png/.jpg/.jpeg images; {_LAYOUT}")
        classes[sub.name] = files
    if not classes:
        raise DataError(f"imagefolder: {folder} has no class folders; {_LAYOUT}")
    if len(classes) < min_classes:
        raise DataError(f"imagefolder: {folder} has only one class folder ({next(iter(classes))}); need at least 2")
    return classes


def _flatten(classes: dict[str, list[str]], index: dict[str, int]) -> tuple[list[str], np.ndarray]:
    files = [f for name, fs in classes.items() for f in fs]
    labels = np.array([index[name] for name, fs in classes.items() for _ in fs], dtype=np.int64)
    return files, labels


def load_imagefolder(path: str, *, seed: int, val_fraction: float, image_size: int) -> DataSource:
    import torch

    from ._image_stores import FileStore

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} does not exist or is not a folder; {_LAYOUT}")
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir():
        classes = scan_classes(train_dir)
    else:
        classes = scan_classes(root)
    names = tuple(classes)
    index = {name: i for i, name in enumerate(names)}
    files, labels = _flatten(classes, index)
    if train_dir.is_dir() and val_dir.is_dir():
        val_classes = scan_classes(val_dir, min_classes=1)
        unknown = sorted(set(val_classes) - set(index))
        if unknown:
            raise DataError(
                f"imagefolder: {val_dir} has class folders {', '.join(unknown)} that {train_dir} lacks "
                f"(its classes: {', '.join(names)})"
            )
        train_files, train_labels = files, labels
        val_files, val_labels = _flatten(val_classes, index)
    else:
        train_idx, val_idx = stratified_split(labels, val_fraction=val_fraction, seed=seed)
        train_files, train_labels = [files[i] for i in train_idx], labels[train_idx]
        val_files, val_labels = [files[i] for i in val_idx], labels[val_idx]
        if not val_files:
            raise DataError(
                f"imagefolder: {root} has too few images per class to split off a validation set "
                f"(val_fraction={val_fraction}); add images or a val/ folder"
            )
    store = FileStore(
        train_files=tuple(train_files), train_labels=torch.from_numpy(train_labels),
        val_files=tuple(val_files), val_labels=torch.from_numpy(val_labels),
        image_size=image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    )
    return DataSource(
        name=f"imagefolder:{path}", num_classes=len(names), in_channels=3, image_size=image_size,
        n_train=store.n_train, n_val=store.n_val, class_names=names, _store=store,
    )

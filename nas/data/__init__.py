"""Data loading for search, training and BatchNorm recalibration. Offline: files only, no downloads.

>>> data = load_data("mnist-mini", seed=0)                    # doctest: +SKIP
>>> for x, y in data.train_batches(batch_size=64, seed=0, epoch=0): ...   # doctest: +SKIP

Modules: ``specs`` (spec parsing, ``load_data``), ``source`` (``DataSource``, batch plans and
sharding), ``_image_stores`` (indices -> normalised batches), ``transforms`` (torch image ops),
``mnist`` / ``cifar`` / ``imagefolder`` (one dataset format each), ``split`` (seeds, checks,
stratified split). ``import nas.data`` does not import torch; loading a dataset does.
"""

from __future__ import annotations

from .errors import DataError
from .source import DataSource
from .specs import list_datasets, load_data

__all__ = ["DataError", "DataSource", "list_datasets", "load_data"]

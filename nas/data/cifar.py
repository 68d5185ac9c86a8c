"""``cifar10:PATH``: the python-version CIFAR-10 folder ``cifar-10-batches-py`` (or its parent).

train = ``data_batch_1..5``, val = ``test_batch``. The batches are pickles, and user data is never
unpickled freely: :func:`safe_unpickle` runs pickle's machinery with a ``find_class`` that resolves
only the handful of callables a numpy array and a protocol-2 ``bytes`` need, so no pickle can call
``os.system`` or import anything.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .errors import DataError
from .source import DataSource

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
VAL_FILE = "test_batch"
META_FILE = "batches.meta"
_LAYOUT = "expected the python-version CIFAR-10 folder cifar-10-batches-py (data_batch_1..5, test_batch) or its parent"


class _ForbiddenGlobal(pickle.UnpicklingError):
    pass


def _latin1_encode(text: object, encoding: object = "latin1") -> bytes:
    """Stands in for ``_codecs.encode``, which Python 3 writes for every ``bytes`` under protocol 2;
    only the latin-1 form that pickle itself emits is accepted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _ForbiddenGlobal(f"_codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


# The only globals a CIFAR batch may name. A numpy array pickles as
# _reconstruct(ndarray, shape, typecode) + BUILD(state) with a dtype made by numpy.dtype(...);
# with only ndarray/dtype reachable, these build plain arrays and cannot run other code (an
# object-dtype array could only hold objects that pass this same filter, and is rejected later).
# The real files were written by Python 2's numpy (numpy.core...), numpy >= 2 writes numpy._core...
_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's multiarray._reconstruct, wherever it lives
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle's hook
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _ForbiddenGlobal(f"{module}.{name}") from None


def safe_unpickle(path: Path) -> object:
    """Parse one CIFAR pickle without executing anything; ``DataError`` naming the file if it is
    corrupt or names anything beyond numpy arrays, dicts, lists, strings and numbers."""
    try:
        with open(path, "rb") as f:
            # latin1: the Python 2 ``str`` in the real files (keys, array bytes) decode losslessly.
            return _SafeUnpickler(f, encoding="latin1").load()
    except _ForbiddenGlobal as err:
        raise DataError(
            f"cifar10: {path} refers to {err}, which a CIFAR-10 batch never contains; refusing to load it "
            "(only numpy arrays, dicts, lists, strings and numbers are accepted)"
        ) from None
    except Exception as err:  # truncated or garbled pickles raise many kinds of errors
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"cifar10: {path} is corrupt ({reason}); {_LAYOUT}") from None


def _get(d: dict, key: str):
    return d[key.encode()] if key.encode() in d else d.get(key)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N,3,32,32), labels int64 (N,))`` from one batch file."""
    obj = safe_unpickle(path)
    data = _get(obj, "data") if isinstance(obj, dict) else None
    labels = _get(obj, "labels") if isinstance(obj, dict) else None

    def bad(why: str) -> DataError:
        return DataError(f"cifar10: {path} is not a CIFAR-10 batch ({why}); {_LAYOUT}")

    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise bad("expected a dict with 'data', a uint8 array of shape (N, 3072)")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != data.shape[0]:
        raise bad(f"expected 'labels', a list of {data.shape[0]} ints")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise bad("'labels' are not integers") from None
    if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() > 9)):
        raise bad("'labels' must be integers in 0..9")
    return data.reshape(-1, 3, 32, 32), y


def find_cifar_dir(path: str) -> Path:
    """The folder holding the batches: ``path`` itself or ``path/cifar-10-batches-py``."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"cifar10: {root} does not exist or is not a folder; {_LAYOUT}")
    for candidate in (root, root / "cifar-10-batches-py"):
        if all((candidate / name).is_file() for name in (*TRAIN_FILES, VAL_FILE)):
            return candidate
    found = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    missing = [name for name in (*TRAIN_FILES, VAL_FILE) if not (found / name).is_file()]
    raise DataError(f"cifar10: {found} has no {', '.join(missing)}; {_LAYOUT}")


def _class_names(folder: Path) -> tuple[str, ...]:
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        return CIFAR_CLASSES
    meta = safe_unpickle(meta_path)
    names = _get(meta, "label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, (str, bytes)) for n in names):
        raise DataError(f"cifar10: {meta_path} is not CIFAR-10 metadata (expected 'label_names', 10 strings)")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else n for n in names)


def load_cifar10(path: str) -> DataSource:
    import torch

    from ._image_stores import TensorStore

    folder = find_cifar_dir(path)
    parts = [read_batch(folder / name) for name in TRAIN_FILES]
    val_x, val_y = read_batch(folder / VAL_FILE)
    store = TensorStore(
        train_images=torch.from_numpy(np.concatenate([p[0] for p in parts])),
        train_labels=torch.from_numpy(np.concatenate([p[1] for p in parts])),
        val_images=torch.from_numpy(np.ascontiguousarray(val_x)),
        val_labels=torch.from_numpy(val_y),
        mean=CIFAR_MEAN, std=CIFAR_STD, flip=True,
    )
    return DataSource(
        name=f"cifar10:{path}", num_classes=10, in_channels=3, image_size=32, n_train=store.n_train,
        n_val=store.n_val, class_names=_class_names(folder), _store=store,
    )

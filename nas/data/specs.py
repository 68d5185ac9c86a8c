"""Dataset specs (``mnist-mini``, ``digits``, ``cifar10:PATH``, ``imagefolder:PATH``) and :func:`load_data`."""

from __future__ import annotations

from .errors import DataError
from .source import DataSource
from .split import check_fraction, check_int

_FORMS = ("mnist-mini", "digits", "cifar10:PATH", "imagefolder:PATH")


def list_datasets() -> list[str]:
    """The spec forms :func:`load_data` accepts; ``PATH`` stands for a folder."""
    return list(_FORMS)


def load_data(spec: str, *, seed: int = 0, val_fraction: float = 0.2, image_size: int = 224) -> DataSource:
    """Load a dataset. Reads files (never the network).

    ``seed`` and ``val_fraction`` shape the stratified train/val split where the data has none
    (mnist-mini, digits, flat image folders). ``image_size`` applies to image folders only; MNIST and
    digits (scaled up from 8 px) yield 28 px and CIFAR-10 32 px images. Raises ``DataError`` for an unknown spec or a missing/corrupt
    path and ``ValueError`` for a bad argument.
    """
    seed = check_int("seed", seed, minimum=0)
    val_fraction = check_fraction("val_fraction", val_fraction)
    image_size = check_int("image_size", image_size, minimum=1)
    if not isinstance(spec, str):
        raise DataError(f"a dataset spec must be a string, got {spec!r}; valid forms: {', '.join(_FORMS)}")
    kind, colon, path = spec.partition(":")
    if spec == "mnist-mini":
        from .mnist import load_mnist_mini

        return load_mnist_mini(seed=seed, val_fraction=val_fraction)
    if spec == "digits":
        from .digits import load_digits_source

        return load_digits_source(seed=seed, val_fraction=val_fraction)
    if kind in ("cifar10", "imagefolder") and colon:
        if not path.strip():
            raise DataError(f"dataset spec {spec!r} has no path; write {kind}:PATH")
        if kind == "cifar10":
            from .cifar import load_cifar10

            return load_cifar10(path)
        from .imagefolder import load_imagefolder

        return load_imagefolder(path, seed=seed, val_fraction=val_fraction, image_size=image_size)
    hint = f" (write {kind}:PATH)" if kind in ("cifar10", "imagefolder") else ""
    raise DataError(f"unknown dataset spec {spec!r}{hint}; valid forms: {', '.join(_FORMS)}")

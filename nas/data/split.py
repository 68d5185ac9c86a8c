"""Seeds derived from named streams, argument checks and the stratified train/val split (numpy only)."""

from __future__ import annotations

import numpy as np

# Stream tags keep the random streams of one seed apart (shuffle, augmentation, calibration, split).
SHUFFLE, AUGMENT, CALIBRATE, SPLIT = 0x5348, 0x4147, 0x434C, 0x5350


def derive_seed(tag: int, *words: int) -> int:
    """A 63-bit seed (for ``torch.Generator.manual_seed``) from a stream tag and non-negative ints."""
    state = np.random.SeedSequence([tag, *words]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def derive_rng(tag: int, *words: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([tag, *words]))


def check_int(name: str, value: object, *, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; ``ValueError`` showing the value otherwise (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(name: str, value: object) -> float:
    """``value`` as a float strictly between 0 and 1; ``ValueError`` showing the value otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def stratified_split(labels: np.ndarray, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, val), class by class, reproducibly from ``seed``.

    Each class sends ``round(n_c * val_fraction)`` of its items to val, at least one when it has two
    or more and never all of them. Both index arrays come back sorted.
    """
    labels = np.asarray(labels)
    rng = derive_rng(SPLIT, seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[rng.permutation(members.size)]
        n_val = int(np.floor(members.size * val_fraction + 0.5))
        n_val = min(max(n_val, 1 if members.size >= 2 else 0), members.size - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))

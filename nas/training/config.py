"""``TrainConfig``: every setting of a supernet training run, from defaults, TOML and flags."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nas._config_io import ConfigError, read_toml, typed_values


STRATEGY_NAMES = ("sandwich", "ps")


@dataclass(frozen=True)
class TrainConfig:
    """Defaults train ``tiny_mbv3`` on the embedded MNIST subset in a few minutes on 2 cores."""

    space: str = "tiny_mbv3"
    data: str = "mnist-mini"
    strategy: str = "sandwich"
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.1  # with n_random=1: 97.8% / 95.5% (largest/smallest) on mnist-mini in ~10 min, 2 cores
    momentum: float = 0.9
    weight_decay: float = 3e-5
    label_smoothing: float = 0.1
    n_random: int = 1  # sandwich: random subnets per step besides the largest and smallest
    kd_ratio: float = 1.0  # progressive shrinking: weight of the distillation loss
    ps_fractions: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)  # full, kernel, depth, expand
    steps_per_epoch: int = 0  # 0: one full pass over the training set
    val_fraction: float = 0.2
    image_size: int = 224  # imagefolder only
    calib_batches: int = 10  # BN recalibration batches per evaluated subnet
    eval_batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGY_NAMES:
            raise ConfigError(f"strategy={self.strategy!r} is not one of {list(STRATEGY_NAMES)}")
        for name in ("epochs", "batch_size", "eval_batch_size", "calib_batches", "image_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("n_random", "steps_per_epoch", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ConfigError(f"need lr > 0, weight_decay >= 0, 0 <= momentum < 1; got lr={self.lr}, "
                              f"weight_decay={self.weight_decay}, momentum={self.momentum}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")

    @property
    def hash(self) -> str:
        """Stable hash of every setting; a resumed run must have the same one."""
        blob = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_overrides(self, **overrides) -> "TrainConfig":
        """A copy with the given settings replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_dict(cls, table: dict, *, source: str = "config") -> "TrainConfig":
        return cls(**typed_values(cls, table, source=source))

    @classmethod
    def from_toml(cls, path: Path) -> "TrainConfig":
        """Read the ``[train]`` table of a TOML file (or its top level if it has no such table)."""
        blob = read_toml(path)
        return cls.from_dict(blob.get("train", blob), source=str(path))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

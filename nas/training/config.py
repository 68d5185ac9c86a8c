"""``TrainConfig``: every setting of a supernet training run, from defaults, TOML and flags."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nas._config_io import SEED, ConfigError, check_ranges, from_table, ints, numbers, read_toml, shown, subtable
from search_spaces import MobileNetV3Space, ViTSpace

STRATEGY_NAMES = ("sandwich", "ps")
OPTIMIZER_NAMES = ("sgd", "adamw")
# progressive shrinking's stages (supernets.training.strategies), per family
PS_STAGES = tuple(name for name, _ in MobileNetV3Space.SHRINK_STAGES)  # full, kernel, depth, expand
VIT_PS_STAGES = tuple(name for name, _ in ViTSpace.SHRINK_STAGES)  # full, mlp, heads, depth
# Settings added after runs were saved: while at these defaults they are left out of ``hash`` and of
# settings comparisons (``comparable``), so runs saved before they existed keep their hash and resume.
LATER_DEFAULTS = {"optimizer": "sgd", "warmup_epochs": 0}


@dataclass(frozen=True)
class TrainConfig:
    """Defaults train ``tiny_mbv3`` on the embedded MNIST subset in a few minutes on 2 cores."""

    space: str = "tiny_mbv3"
    data: str = "mnist-mini"
    strategy: str = "sandwich"
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.1  # with n_random=1: 97.8% / 95.5% (largest/smallest) on mnist-mini in ~10 min, 2 cores
    momentum: float = 0.9  # sgd only (Nesterov)
    weight_decay: float = 3e-5  # not on norms, biases, kernel transforms, cls tokens, position embeddings
    optimizer: str = "sgd"  # or "adamw" (transformers)
    warmup_epochs: int = 0  # linear learning-rate warm-up over the first epochs, then the cosine schedule
    label_smoothing: float = 0.1
    n_random: int = 1  # sandwich: random subnets per step besides the largest and smallest
    kd_ratio: float = 1.0  # progressive shrinking: weight of the distillation loss
    ps_fractions: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)  # full, kernel, depth, expand (ViT: mlp, heads, depth)
    steps_per_epoch: int = 0  # 0: one full pass over the training set
    val_fraction: float = 0.2
    image_size: int = 224  # imagefolder only
    calib_batches: int = 10  # BN recalibration batches per evaluated subnet
    eval_batch_size: int = 256
    seed: int = 0

    # The valid range of every numeric setting (``nas train`` flags use the same ones); wide enough for
    # any real run, narrow enough to refuse NaN, inf and a value that would run for ever.
    RANGES = {
        "epochs": ints(1, 100_000),
        "batch_size": ints(1, 1_000_000),
        "lr": numbers(0, 100, low_open=True),
        "momentum": numbers(0, 1, high_open=True),
        "weight_decay": numbers(0, 1),
        "warmup_epochs": ints(0, 100_000),
        "label_smoothing": numbers(0, 1, high_open=True),
        "n_random": ints(0, 100),
        "kd_ratio": numbers(0, 1000),
        "steps_per_epoch": ints(0, 10_000_000),  # 0: one full pass
        "val_fraction": numbers(0, 1, low_open=True, high_open=True),
        "image_size": ints(1, 4096),
        "calib_batches": ints(1, 100_000),
        "eval_batch_size": ints(1, 1_000_000),
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGY_NAMES:
            raise ConfigError(f"strategy={self.strategy!r} is not one of {list(STRATEGY_NAMES)}")
        if self.optimizer not in OPTIMIZER_NAMES:
            raise ConfigError(f"optimizer={self.optimizer!r} is not one of {list(OPTIMIZER_NAMES)}")
        check_ranges(self, self.RANGES, skip_none=False)
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"warmup_epochs={self.warmup_epochs} is more than epochs={self.epochs}; "
                              f"use 0..{self.epochs}")
        fractions = self.ps_fractions
        if (not isinstance(fractions, tuple) or len(fractions) != len(PS_STAGES)
                or not all(numbers(0, 1).holds(f) for f in fractions)
                or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6)):
            got = list(fractions) if isinstance(fractions, tuple) else fractions
            raise ConfigError(f"ps_fractions must be {len(PS_STAGES)} numbers >= 0 summing to 1 (the shares of the "
                              f"{', '.join(PS_STAGES)} stages; for a ViT {', '.join(VIT_PS_STAGES)}), "
                              f"got {shown(got)}")

    @property
    def hash(self) -> str:
        """Stable hash of every setting (``LATER_DEFAULTS`` at their default left out); a resumed run
        must have the same one."""
        blob = json.dumps(self.comparable(asdict(self)), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @staticmethod
    def comparable(settings: dict) -> dict:
        """``settings`` (a ``to_dict``, or a saved one) without the ``LATER_DEFAULTS`` keys at their
        default: two runs have the same settings when these dicts are equal."""
        return {k: v for k, v in settings.items() if not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}

    def differences(self, saved) -> list[str]:
        """The settings whose values differ between ``saved`` (a stored ``to_dict``) and this config;
        a ``LATER_DEFAULTS`` key that a run saved before it existed counts as its default."""
        saved = {**LATER_DEFAULTS, **saved} if isinstance(saved, dict) else dict(LATER_DEFAULTS)
        return sorted(k for k, v in self.to_dict().items() if saved.get(k) != v)

    def with_overrides(self, **overrides) -> "TrainConfig":
        """A copy with the given settings replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_dict(cls, table: dict, *, source: str = "config") -> "TrainConfig":
        return from_table(cls, table, source=source)

    @classmethod
    def from_toml(cls, path: Path) -> "TrainConfig":
        """Read the ``[train]`` table of a TOML file (or its top level if it has no such table)."""
        blob = read_toml(path)
        return cls.from_dict(subtable(blob, "train", str(path)) if "train" in blob else blob, source=str(path))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

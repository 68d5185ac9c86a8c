"""``evaluate_checkpoint``: accuracy of one subnet of a trained supernet (``nas eval``)."""

from __future__ import annotations

from pathlib import Path

import torch

from nas.data import load_data
from nas.training.distributed import pick_device
from nas.training.train import build_supernet
from nas.training.config import TrainConfig
from supernets.checkpoint import CheckpointError, load_checkpoint
from supernets.evaluate import EvalCache, EvalResult, evaluate

CACHE_NAME = "eval_cache.json"


class CheckpointEvaluator:
    """Accuracy of subnets of one trained supernet: the checkpoint and data load once.

    ``__call__(arch)`` evaluates with BN recalibration (cached next to the checkpoint, keyed by its
    SHA-256, the data and the ``arch_id``). ``space`` is the checkpoint's space; ``checkpoint_hash``
    its SHA-256; ``data`` the dataset name; ``data_key`` the dataset, its split, image size and
    recalibration batch (what the cache is keyed by besides the checkpoint and the arch).
    """

    def __init__(self, checkpoint: Path, *, data: str | None = None) -> None:
        torch.set_flush_denormal(True)  # as in training: denormal activations are slow on CPUs
        checkpoint = Path(checkpoint)
        state = load_checkpoint(checkpoint)
        blob = state["meta"].get("config")
        if not isinstance(blob, dict):
            raise CheckpointError(f"{checkpoint}: meta.config is missing; a `nas train` checkpoint carries its "
                                  "training config")
        config = TrainConfig.from_dict(blob, source=str(checkpoint))
        if data is not None:
            config = config.with_overrides(data=data)
        source = load_data(config.data, seed=config.seed, val_fraction=config.val_fraction,
                           image_size=config.image_size)
        self.device = pick_device()
        supernet = build_supernet(config, source).to(self.device)
        try:
            supernet.load_state_dict(state["model"])
        except RuntimeError as err:
            raise CheckpointError(f"{checkpoint}: weights do not fit {config.space} on {source.name} "
                                  f"({source.num_classes} classes, {source.in_channels} channels): "
                                  f"{str(err).splitlines()[-1].strip()}") from None
        self.supernet, self.config, self.source = supernet, config, source
        self.space = supernet.space
        self.checkpoint_hash = state["sha256"]
        self.data = source.name
        # what determines a figure besides the weights and the arch: the data, its split and the recalibration
        self.data_key = (f"{source.name}/val{config.val_fraction}/seed{config.seed}/img{config.image_size}"
                         f"/calib-bs{config.batch_size}")
        directory = checkpoint if checkpoint.is_dir() else checkpoint.parent
        self.cache = EvalCache(checkpoint_hash=state["sha256"], data=self.data_key, path=directory / CACHE_NAME)

    def __call__(self, arch_obj) -> EvalResult:
        config, source = self.config, self.source
        arch = self.space.parse(arch_obj)
        return evaluate(self.supernet, arch, source.val_batches(batch_size=config.eval_batch_size),
                        calib_batches=source.calib_batches(batch_size=config.batch_size, seed=config.seed),
                        n_calib_batches=config.calib_batches, cache=self.cache, device=self.device)


    def validation_arrays(self, resolution: int):
        """The validation split resized to ``resolution``: ``(float32 images, labels)`` as numpy, in
        the fixed order float evaluation reads it (for evaluating exported files)."""
        import numpy as np

        from supernets.training.losses import resize_batch

        images, labels = [], []
        for x, y in self.source.val_batches(batch_size=self.config.eval_batch_size):
            images.append(resize_batch(x, resolution).numpy())
            labels.append(y.numpy())
        return np.concatenate(images).astype(np.float32), np.concatenate(labels)


def evaluate_checkpoint(checkpoint: Path, arch_obj, *, data: str | None = None) -> EvalResult:
    """Load ``checkpoint`` (a training directory or its file) and evaluate one subnet (``nas eval``)."""
    return CheckpointEvaluator(checkpoint, data=data)(arch_obj)

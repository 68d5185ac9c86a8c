"""Accuracy of one subnet of a supernet, with BatchNorm recalibration and a result cache."""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import ArchConfig
from supernets.base import Supernet
from supernets.bn import recalibrate_bn
from supernets.checkpoint import atomic_write_bytes
from supernets.training.losses import resize_batch


@dataclass(frozen=True)
class EvalResult:
    top1: float  # fraction of correct top-1 predictions, 0..1
    loss: float  # mean cross-entropy
    n: int  # images evaluated
    bn_recalibrated: bool


@contextmanager
def preserved_bn_state(supernet: nn.Module) -> Iterator[None]:
    """Restore every BatchNorm buffer on exit, so evaluation leaves training state untouched."""
    norms = [m for m in supernet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (mean, var, count) in zip(norms, saved):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)


class EvalCache:
    """Results keyed by ``arch_id`` for one (checkpoint hash, data) pair; optional JSON file.

    A file written for another checkpoint or dataset is ignored, not mixed in, and so is a file that
    does not follow the schema (a top-1 outside [0, 1], a non-finite or negative loss, a count < 1,
    anything of the wrong type): it is overwritten by the next result. Writes are atomic.
    """

    def __init__(self, *, checkpoint_hash: str, data: str, path: Path | None = None) -> None:
        self.checkpoint_hash, self.data, self.path = checkpoint_hash, data, path
        self._results: dict[str, EvalResult] = {}
        if path is not None and path.exists():
            try:
                blob = json.loads(path.read_text())
            except (OSError, ValueError):
                blob = {}
            if isinstance(blob, dict) and blob.get("checkpoint_hash") == checkpoint_hash and blob.get("data") == data:
                self._results = _checked_results(blob.get("results"))

    def get(self, arch_id: str) -> EvalResult | None:
        return self._results.get(arch_id)

    def put(self, arch_id: str, result: EvalResult) -> None:
        self._results[arch_id] = result
        if self.path is not None:
            blob = {"checkpoint_hash": self.checkpoint_hash, "data": self.data,
                    "results": {k: asdict(v) for k, v in self._results.items()}}
            atomic_write_bytes(self.path, json.dumps(blob, indent=1).encode())

    def __len__(self) -> int:
        return len(self._results)


def _checked_results(results) -> dict[str, EvalResult]:
    """The cached results if every entry follows the schema, else none (see :class:`EvalCache`)."""
    if not isinstance(results, dict):
        return {}
    checked = {}
    for arch_id, v in results.items():
        if not (isinstance(v, dict) and set(v) == {"top1", "loss", "n", "bn_recalibrated"}):
            return {}
        top1, loss, n, recal = v["top1"], v["loss"], v["n"], v["bn_recalibrated"]
        numbers_ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (top1, loss))
        if not (numbers_ok and 0.0 <= top1 <= 1.0 and math.isfinite(loss) and loss >= 0
                and isinstance(n, int) and not isinstance(n, bool) and n >= 1 and isinstance(recal, bool)):
            return {}
        checked[str(arch_id)] = EvalResult(top1=float(top1), loss=float(loss), n=n, bn_recalibrated=recal)
    return checked


def evaluate(
    supernet: Supernet,
    arch: ArchConfig,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    calib_batches: Iterable | None = None,
    n_calib_batches: int = 20,
    cache: EvalCache | None = None,
    device: torch.device | None = None,
) -> EvalResult:
    """Top-1 accuracy and mean loss of ``arch`` on ``loader`` (images resized to the arch's
    resolution). With ``calib_batches`` BN statistics are first re-estimated for ``arch``; the
    supernet's BN buffers and active arch are restored afterwards. Cached by ``arch_id``."""
    arch = supernet.space.validate(arch)
    if cache is not None and (hit := cache.get(arch.arch_id)) is not None:
        return hit
    device = device or next(supernet.parameters()).device
    resolution = supernet.space.input_shape(arch)[-1]
    correct, total, loss_sum = 0, 0, 0.0
    was_training = supernet.training
    with preserved_bn_state(supernet):
        if calib_batches is not None:
            resized = ((resize_batch(x.to(device), resolution)) for x, *_ in _as_pairs(calib_batches))
            recalibrate_bn(supernet, arch, resized, n_calib_batches)
        supernet.eval()
        with supernet.active(arch), torch.no_grad():
            for images, labels in loader:
                images, labels = resize_batch(images.to(device), resolution), labels.to(device)
                logits = supernet(images)
                loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
                correct += (logits.argmax(1) == labels).sum().item()
                total += labels.numel()
        supernet.train(was_training)
    if total == 0:
        raise ValueError("evaluate got an empty loader")
    result = EvalResult(top1=correct / total, loss=loss_sum / total, n=total,
                        bn_recalibrated=calib_batches is not None)
    if cache is not None:
        cache.put(arch.arch_id, result)
    return result


def recalibrated_subnet(supernet: Supernet, arch: ArchConfig, calib_batches: Iterable, n_calib_batches: int = 20,
                        *, device: torch.device | None = None) -> nn.Module:
    """``supernet.extract(arch)`` with BN statistics re-estimated for ``arch`` on ``calib_batches``
    (resized to its resolution), as :func:`evaluate` uses them; the supernet's own BN buffers and
    active arch are restored. The subnet is in eval mode on ``device``."""
    arch = supernet.space.validate(arch)
    device = device or next(supernet.parameters()).device
    resolution = supernet.space.input_shape(arch)[-1]
    was_training = supernet.training
    with preserved_bn_state(supernet):
        resized = ((resize_batch(x.to(device), resolution)) for x, *_ in _as_pairs(calib_batches))
        recalibrate_bn(supernet, arch, resized, n_calib_batches)
        subnet = supernet.extract(arch)
    supernet.train(was_training)
    return subnet.eval()


def _as_pairs(batches: Iterable) -> Iterator[tuple]:
    for batch in batches:
        yield batch if isinstance(batch, (tuple, list)) else (batch,)

"""Accuracy of one subnet of a supernet, with BatchNorm recalibration and a result cache.

The cache (:class:`EvalCache`, ``eval_cache.json`` beside a checkpoint) is disposable and untrusted: a
figure is served from it only when the file is for the same checkpoint (content hash) and data, and the
entry for the same ``arch_id`` and evaluation setting (BN recalibration batches); every value is checked
(finite, in range, a top-1 that is a count of images). A file that breaks the schema is ignored with one
:class:`EvalCacheWarning` line and replaced by the next result; a figure served from the cache says so
(:attr:`EvalResult.cached`, with the time it was measured).
"""

from __future__ import annotations

import json
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import ArchConfig
from search_spaces._checks import is_finite_number, refuse_json_constant
from supernets.base import Supernet
from supernets.bn import has_batchnorm, recalibrate_bn
from supernets.checkpoint import atomic_write_bytes
from supernets.training.losses import resize_batch

CACHE_FORMAT_VERSION = 2
MAX_CACHE_BYTES = 64 << 20  # ~200 bytes an entry: far more archs than a search evaluates
MAX_IMAGES = 10**9
_ENTRY_KEYS = {"top1", "loss", "n", "bn_recalibrated", "setting", "measured_at"}
_ARCH_ID = re.compile(r"^[0-9a-f]{1,64}$")


class EvalCacheWarning(RuntimeWarning):
    """An eval cache file was ignored (it breaks the schema); its figures are measured again."""


@dataclass(frozen=True)
class EvalResult:
    top1: float  # fraction of correct top-1 predictions, 0..1
    loss: float  # mean cross-entropy
    n: int  # images evaluated
    bn_recalibrated: bool
    # provenance, not part of the figure (equality ignores it): served from the cache, and when it was measured
    cached: bool = field(default=False, compare=False)
    measured_at: str | None = field(default=None, compare=False)  # ISO 8601 UTC, e.g. 2026-12-06T13:50:00Z


def evaluation_setting(n_calib_batches: int | None) -> str:
    """The cache's name for how :func:`evaluate` measured: BN recalibrated on ``n_calib_batches`` batches, or
    (None) with the BN statistics as trained."""
    return "bn-as-trained" if n_calib_batches is None else f"bn-recalibrated-{int(n_calib_batches)}-batches"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    """Results keyed by ``arch_id`` (and an evaluation ``setting``) for one (checkpoint hash, data) pair;
    optional JSON file (module docstring).

    ``data`` names everything besides the checkpoint that decides the figure (dataset, split, resolution...).
    A file written for another checkpoint or data is ignored, not mixed in; one that does not follow the
    schema (a top-1 outside [0, 1] or not a count of ``n`` images, a non-finite or negative loss, ``n`` outside
    1..1e9, a key or value of the wrong type, another format version) is ignored with one
    :class:`EvalCacheWarning` line naming the file, the key and the valid range. Either way it is
    replaced by the next result. Writes are atomic. :meth:`get` returns results marked ``cached``."""

    def __init__(self, *, checkpoint_hash: str, data: str, path: Path | None = None) -> None:
        self.checkpoint_hash, self.data, self.path = checkpoint_hash, data, path
        self._results: dict[str, tuple[str, EvalResult]] = {}
        if path is not None and path.exists():
            self._results = self._read(Path(path))

    def _read(self, path: Path) -> dict[str, tuple[str, EvalResult]]:
        """The file's entries when it is for this checkpoint and data and follows the schema, else none."""
        try:
            if path.stat().st_size > MAX_CACHE_BYTES:
                return _ignored(path, f"{path.stat().st_size} bytes, more than an eval cache holds ({MAX_CACHE_BYTES})")
            blob = json.loads(path.read_bytes().decode("utf-8"), parse_constant=refuse_json_constant)
        except OSError as err:
            return _ignored(path, f"unreadable ({err.strerror or err})")
        except (ValueError, RecursionError) as err:  # not UTF-8, not JSON, NaN/Infinity, nested too deep
            return _ignored(path, f"not a JSON eval cache ({' '.join(str(err).split())[:100]})")
        if not isinstance(blob, dict):
            return _ignored(path, f"holds a {type(blob).__name__}, not a JSON object")
        if blob.get("checkpoint_hash") != self.checkpoint_hash or blob.get("data") != self.data:
            return {}  # another checkpoint's or data's figures: not ours, quietly replaced
        version = blob.get("format_version")
        if type(version) is not int or version != CACHE_FORMAT_VERSION:
            return _ignored(path, f"format_version is {str(version)[:20]!r}, this hwnas reads {CACHE_FORMAT_VERSION}")
        unknown = sorted(set(blob) - {"format_version", "checkpoint_hash", "data", "results"})
        if unknown:
            return _ignored(path, f"unknown key {unknown[0][:40]!r}; valid: format_version, checkpoint_hash, data, "
                                  "results")
        problem, results = _checked_results(blob.get("results"))
        return _ignored(path, problem) if problem else results

    def get(self, arch_id: str, setting: str = "") -> EvalResult | None:
        """The cached result of ``arch_id`` measured with ``setting`` (marked ``cached``), or None."""
        entry = self._results.get(arch_id)
        if entry is None or entry[0] != setting:
            return None
        return replace(entry[1], cached=True)

    def put(self, arch_id: str, result: EvalResult, setting: str = "") -> None:
        """Cache ``result`` of ``arch_id`` measured with ``setting`` (and write the file, atomically). A result the
        schema would refuse on reading (a NaN loss of a diverged network, ...) is not cached."""
        result = replace(result, cached=False, measured_at=result.measured_at or _now())
        if _entry_problem(arch_id, _entry(setting, result)) is not None:
            return
        self._results[arch_id] = (setting, result)
        if self.path is not None:
            blob = {"format_version": CACHE_FORMAT_VERSION, "checkpoint_hash": self.checkpoint_hash, "data": self.data,
                    "results": {k: _entry(s, v) for k, (s, v) in self._results.items()}}
            atomic_write_bytes(self.path, json.dumps(blob, indent=1, allow_nan=False).encode())

    def __len__(self) -> int:
        return len(self._results)


def _entry(setting: str, result: EvalResult) -> dict:
    return {"top1": result.top1, "loss": result.loss, "n": result.n, "bn_recalibrated": result.bn_recalibrated,
            "setting": setting, "measured_at": result.measured_at}


def _ignored(path: Path, problem: str) -> dict:
    warnings.warn(f"ignoring the eval cache {str(path)!r}: {problem}; its figures will be measured again and the "
                  "file replaced", EvalCacheWarning, stacklevel=4)
    return {}


def _entry_problem(arch_id, v) -> str | None:
    """Why one cache entry breaks the schema (the key and the valid range), or None."""
    where = f"results[{str(arch_id)[:20]!r}]"
    if not (isinstance(arch_id, str) and _ARCH_ID.match(arch_id)):
        return f"{where}: an arch_id is 1..64 lowercase hex digits"
    if not isinstance(v, dict) or set(v) != _ENTRY_KEYS:
        return f"{where}: expected an object of exactly {', '.join(sorted(_ENTRY_KEYS))}"
    top1, loss, n = v["top1"], v["loss"], v["n"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
        return f"{where}.n = {str(n)[:20]}: expected an integer in 1..{MAX_IMAGES}"
    if not is_finite_number(top1) or not 0.0 <= top1 <= 1.0:
        return f"{where}.top1 = {str(top1)[:20]}: expected a fraction in [0, 1]"
    if abs(top1 * n - round(top1 * n)) > 1e-6 * n:
        return f"{where}.top1 = {top1}: not a count of correct images out of n = {n}"
    if not is_finite_number(loss) or not 0.0 <= loss <= 1e6:
        return f"{where}.loss = {str(loss)[:20]}: expected a finite number in [0, 1e6]"
    if not isinstance(v["bn_recalibrated"], bool):
        return f"{where}.bn_recalibrated: expected true or false"
    if not isinstance(v["setting"], str) or len(v["setting"]) > 200:
        return f"{where}.setting: expected a string of at most 200 characters"
    stamp = v["measured_at"]
    try:
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return f"{where}.measured_at: expected an ISO 8601 UTC time like 2026-12-06T13:50:00Z"
    if (when - datetime.now(timezone.utc)).total_seconds() > 86400:
        return f"{where}.measured_at = {stamp}: in the future"
    return None


def _checked_results(results) -> tuple[str | None, dict[str, tuple[str, EvalResult]]]:
    """``(None, entries)`` if every entry follows the schema, else ``(the first problem, {})``."""
    if not isinstance(results, dict):
        return f"results: expected an object of arch_id -> result, got {type(results).__name__}", {}
    checked = {}
    for arch_id, v in results.items():
        problem = _entry_problem(arch_id, v)
        if problem is not None:
            return problem, {}
        checked[arch_id] = (v["setting"], EvalResult(top1=float(v["top1"]), loss=float(v["loss"]), n=v["n"],
                                                     bn_recalibrated=v["bn_recalibrated"],
                                                     measured_at=v["measured_at"]))
    return None, checked


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
    supernet's BN buffers and active arch are restored afterwards. Cached by ``arch_id`` and the
    recalibration setting; a result from the cache has ``cached`` set (and ``measured_at``)."""
    arch = supernet.space.validate(arch)
    setting = evaluation_setting(n_calib_batches if calib_batches is not None else None)
    if cache is not None and (hit := cache.get(arch.arch_id, setting)) is not None:
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
                        bn_recalibrated=calib_batches is not None and has_batchnorm(supernet), measured_at=_now())
    if cache is not None:
        cache.put(arch.arch_id, result, setting)
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

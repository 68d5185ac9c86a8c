"""Atomic, safely loadable training checkpoints.

Contract:
- One checkpoint per run directory: ``directory / CHECKPOINT_NAME``, a ``torch.save`` file holding
  ``{"format_version": FORMAT_VERSION, "model": ..., "optimizer": ..., "meta": ...}``.
- Every write is atomic: bytes go to a hidden temp file in the same directory
  (``.<name>.<pid>.<8 hex>.tmp``), which is flushed and fsynced, then ``os.replace``-d over the
  target, then the directory is fsynced. A reader sees the old file or the new one, never a mix,
  even if the writer is SIGKILLed; at worst a stray temp file is left, which ``load_checkpoint``
  never reads and the next ``save_checkpoint`` into that directory removes.
- Nothing is unpickled freely: loading uses ``torch.load(weights_only=True)``, and saving rejects
  data (numpy arrays, objects, ...) that such a load could not read back.
- A loaded checkpoint is untrusted input: the model is a dict of named tensors, the optimizer a dict or
  None, and ``meta`` follows :data:`META_SCHEMA` (a registered supernet's space, finite numbers in range,
  the RNG state's tensors); any fault is one ``CheckpointError`` line naming the file, the key and the
  valid range. Truncated, binary or unsafe files give one line too, never a torch/zip traceback."""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
import torch

from search_spaces import NASError
from search_spaces._checks import is_finite_number, shown

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1
REQUIRED_META_KEYS = ("space", "space_version", "config_hash", "strategy", "stage", "epoch", "global_step", "rng")
_PLAIN_LEAVES = (str, int, float, bool, type(None), torch.Tensor, torch.nn.Parameter)


class CheckpointError(NASError, ValueError):
    """A checkpoint is missing, corrupt or incompatible; the message names the path and the fault."""


def _fsync_dir(directory: Path) -> None:
    if os.name == "nt":  # Windows cannot open (or fsync) a directory
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _atomic_open(path: Path) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` atomically when the body returns. On any exception
    (KeyboardInterrupt too) the temp file is removed and ``path`` is untouched. The parent must exist."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (see the module docstring)."""
    with _atomic_open(path) as f:
        f.write(data)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically and durably; no temp file survives an exception."""
    with _atomic_open(path) as f:
        torch.save(obj, f)


def remove_stale_temp_files(directory: Path, name: str = CHECKPOINT_NAME) -> list[Path]:
    """Remove the temp files of ``directory / name`` whose writer (the pid in the temp name) is dead;
    return them. Nothing else is touched: not other files, not this process's nor live writers'."""
    pattern, removed = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp$"), []
    for entry in [] if os.name == "nt" else Path(directory).iterdir():  # os.kill(pid, 0) kills on Windows
        match = pattern.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:  # the writer is gone
            entry.unlink(missing_ok=True)
            removed.append(entry)
        except (PermissionError, OverflowError):  # another user's process, or cannot tell: keep it
            pass
    return removed


def _check_plain(value: Any, where: str) -> None:
    """``ValueError`` naming ``where`` unless ``value`` is data ``weights_only`` loading can read."""
    kind = type(value)
    if kind in _PLAIN_LEAVES:
        return
    if kind not in (list, tuple, dict, OrderedDict):
        raise ValueError(f"{where} holds a {kind.__module__}.{kind.__qualname__}, which is not plain data "
                         "(str/int/float/bool/None/list/tuple/dict/torch.Tensor); convert it before saving")
    for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
        if type(key) not in (str, int):
            raise ValueError(f"{where} has a key of type {type(key).__name__} ({key!r}); use str or int")
        _check_plain(item, f"{where}[{key!r}]")


def save_checkpoint(directory: Path, *, model_state: dict, optimizer_state: dict | None, meta: dict) -> Path:
    """Atomically write ``directory / CHECKPOINT_NAME`` (creating ``directory``) and return its path.
    ``meta`` must hold ``REQUIRED_META_KEYS`` (``ValueError`` lists the missing ones), follow
    :data:`META_SCHEMA` and, like the two states, hold only plain data (``ValueError`` names the offending
    key). Stale temp files go first."""
    for name, value in (("meta", meta), ("model_state", model_state)):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a dict, got {type(value).__name__}")
    if missing := [key for key in REQUIRED_META_KEYS if key not in meta]:
        raise ValueError(f"meta is missing required keys: {missing}")
    for name, value in (("meta", meta), ("model_state", model_state), ("optimizer_state", optimizer_state)):
        _check_plain(value, name)
    if (problem := _meta_problem(meta)) is not None:  # never write what load_checkpoint would refuse
        raise ValueError(f"meta.{problem[0]} = {shown(meta.get(problem[0].split('.')[0]))}: {problem[1]}")
    path = Path(directory) / CHECKPOINT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent, CHECKPOINT_NAME)
    atomic_torch_save({"format_version": FORMAT_VERSION, "model": model_state,
                       "optimizer": optimizer_state, "meta": meta}, path)
    return path


MAX_EPOCH = 10**6
MAX_STEP = 10**12
META_SCHEMA = {  # meta key -> what it must be (the keys of REQUIRED_META_KEYS must be there; others may)
    "space": "the name of a registered supernet",
    "space_version": "a string or integer of at most 64 characters",
    "config_hash": "a string of 1..128 characters",
    "strategy": "a training strategy name",
    "stage": "a string of 1..64 characters",
    "epoch": f"an integer in 0..{MAX_EPOCH}",
    "global_step": f"an integer in 0..{MAX_STEP}",
    "rng": "{torch: uint8 tensor, numpy: null or object, cuda: list of uint8 tensors}",
    "config": "an object (the training config)",
    "world_size": "an integer in 1..100000",
    "val": "an object of top-1 fractions in [0, 1]",
}


def _meta_problem(meta: dict) -> tuple[str, str] | None:
    """``(key, what is wrong)`` for the first ``meta`` key that breaks :data:`META_SCHEMA`, or None."""
    from supernets.registry import list_supernets
    from supernets.training.strategies import STRATEGIES

    def text(value, limit):
        return isinstance(value, str) and 0 < len(value) <= limit

    def integer(value, low, high):
        return type(value) is int and low <= value <= high

    def byte_tensor(value):
        return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1

    rng = meta["rng"]
    checks = {
        "space": meta["space"] in list_supernets() if isinstance(meta["space"], str) else False,
        "space_version": (text(meta["space_version"], 64) or integer(meta["space_version"], 0, 10**9)),
        "config_hash": text(meta["config_hash"], 128),
        "strategy": isinstance(meta["strategy"], str) and meta["strategy"] in STRATEGIES,
        "stage": text(meta["stage"], 64),
        "epoch": integer(meta["epoch"], 0, MAX_EPOCH),
        "global_step": integer(meta["global_step"], 0, MAX_STEP),
        "rng": (isinstance(rng, dict) and byte_tensor(rng.get("torch"))
                and isinstance(rng.get("numpy"), (dict, type(None)))
                and isinstance(rng.get("cuda", []), list) and all(byte_tensor(t) for t in rng.get("cuda", []))),
    }
    if "config" in meta:
        checks["config"] = isinstance(meta["config"], dict)
    if "world_size" in meta:
        checks["world_size"] = integer(meta["world_size"], 1, 100_000)
    if "val" in meta:
        val = meta["val"]
        checks["val"] = isinstance(val, dict) and all(isinstance(k, str) and type(v) in (int, float)
                                                      and is_finite_number(v) and 0 <= v <= 1 for k, v in val.items())
    for key, ok in checks.items():
        if not ok:
            if key == "space":
                return key, f"expected one of {list_supernets()}"
            if key == "strategy":
                return key, f"expected one of {sorted(STRATEGIES)}"
            return key, f"expected {META_SCHEMA[key]}"
    if "config" in meta and meta["config"].get("space", meta["space"]) != meta["space"]:
        return "config.space", f"{str(meta['config']['space'])[:40]!r} differs from meta.space {meta['space']!r}"
    return None


def _zip_problem(data: bytes) -> str | None:
    """Why ``data`` is not a torch zip archive that is safe to open (truncated, not a zip, members that would
    unpack to far more than the file: torch stores them uncompressed), or None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError, EOFError, OSError):
        return "not a zip archive: truncated, empty, a raw pickle or another format"
    if unpacked > 2 * len(data) + (1 << 20):
        return f"its members would unpack to {unpacked} bytes from a {len(data)}-byte file"
    return None


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint (``path``: the file or its directory) on CPU with ``weights_only=True``.
    Returns ``{"model", "optimizer", "meta", "sha256"}``, ``sha256`` being the hex digest of exactly the
    bytes parsed (read once, parsed from memory). ``CheckpointError`` if it is missing, unreadable,
    truncated, not a checkpoint dict, of another ``format_version``, lacks required meta keys, or
    would need unsafe unpickling (never attempted)."""
    file = Path(path) / CHECKPOINT_NAME if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise CheckpointError(f"no checkpoint at {file}")
    try:
        data = file.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{file}: cannot read the checkpoint ({err.strerror or err})") from None
    if (problem := _zip_problem(data)) is not None:
        raise CheckpointError(f"{file}: unreadable or unsafe checkpoint ({problem}); expected a torch.save file "
                              "written by save_checkpoint")
    try:
        obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... here
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{file}: unreadable or unsafe checkpoint ({type(err).__name__}: {first})") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file}: not a checkpoint (holds a {type(obj).__name__}, not a dict)")
    if type(version := obj.get("format_version")) is not int or version != FORMAT_VERSION:
        raise CheckpointError(f"{file}: format_version is {version!r}, this hwnas reads {FORMAT_VERSION}")
    if not isinstance(obj.get("model"), dict) or not isinstance(obj.get("meta"), dict) or "optimizer" not in obj:
        raise CheckpointError(f"{file}: checkpoint lacks a model dict, an optimizer entry or a meta dict")
    if missing := [key for key in REQUIRED_META_KEYS if key not in obj["meta"]]:
        raise CheckpointError(f"{file}: meta is missing required keys {missing}")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj["model"].items()):
        raise CheckpointError(f"{file}: model: expected a state dict of named tensors")
    if not isinstance(obj["optimizer"], (dict, type(None))):
        raise CheckpointError(f"{file}: optimizer: expected an optimizer state dict or None, got "
                              f"{type(obj['optimizer']).__name__}")
    if (problem := _meta_problem(obj["meta"])) is not None:
        key, expected = problem
        value = "" if key == "config.space" else f" = {shown(obj['meta'][key])}"
        raise CheckpointError(f"{file}: meta.{key}{value}: {expected}")
    return {"model": obj["model"], "optimizer": obj["optimizer"], "meta": obj["meta"],
            "sha256": hashlib.sha256(data).hexdigest()}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _np_state(value: Any, *, encode: bool) -> Any:
    """numpy bit-generator state <-> plain data: arrays are ``{"__ndarray__": list, "dtype": str}``."""
    if encode and isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if not encode and isinstance(value, dict) and "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"])
    if isinstance(value, dict):
        return {key: _np_state(item, encode=encode) for key, item in value.items()}
    return value.item() if isinstance(value, np.generic) else value


def capture_rng_state(np_rng: np.random.Generator | None = None) -> dict:
    """``{"torch", "numpy", "cuda"}``: torch's CPU state (uint8 tensor), ``np_rng``'s bit-generator
    state as plain data (``None`` without ``np_rng``; PCG64's 128-bit ints stay Python ints, which
    ``weights_only`` loading reads back) and one state tensor per CUDA device (``[]`` without CUDA)."""
    return {"torch": torch.get_rng_state(),
            "numpy": None if np_rng is None else _np_state(np_rng.bit_generator.state, encode=True),
            "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []}


def restore_rng_state(state: dict, np_rng: np.random.Generator | None = None) -> None:
    """Restore what ``capture_rng_state`` captured: torch's CPU state, ``np_rng``'s state (in place;
    ``ValueError`` if ``np_rng`` is given but none was captured) and the CUDA states of the devices
    that exist now (saved states beyond ``torch.cuda.device_count()`` are ignored)."""
    torch.set_rng_state(state["torch"])
    if np_rng is not None:
        if state.get("numpy") is None:
            raise ValueError("rng state holds no numpy state to restore into np_rng")
        np_rng.bit_generator.state = _np_state(state["numpy"], encode=False)
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(state.get("cuda", [])[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)

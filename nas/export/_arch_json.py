"""``arch.json`` and ``model.pt`` of an export folder, checked before anything is built (what
:func:`nas.export.subnet.load_subnet` reads): :func:`read_arch_info` checks every key of ``arch.json`` into an
:class:`ArchInfo`; :func:`expected_state` lays the subnet out on the meta device, :func:`load_state` reads
``model.pt`` (``torch.load(weights_only=True)``, refused unread when it would unpack to more than the weights)
and :func:`check_state` matches its tensors to the layout. Every fault is one ``ExportError`` naming the file
and the key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nas.export._common import FILES, FORMAT_VERSION, ExportError, one_line
from search_spaces import ArchConfig, NASError, SearchSpace, quantized
from search_spaces._checks import refuse_json_constant
from search_spaces.quantization import split_quantized_name

ARCH_FILE = "arch.json"
MAX_ARCH_JSON_BYTES = 1 << 20  # an ofa_mbv3 arch.json is ~2 KB
SUPERNET_SETTINGS = {"num_classes": (1, 100_000), "in_channels": (1, 64)}  # arch.json "supernet": key -> range
_ARCH_KEYS = ("format_version", "space", "space_version", "supernet", "arch_id", "arch", "input_shape", "weights",
              "checkpoint_sha256", "network_arch_id", "quantization", "accelerator")
_SHA256 = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class ArchInfo:
    """``arch.json`` of an export folder, every key checked (:func:`read_arch_info`): the (network) ``space`` it
    names (``<space>+q`` for a quantized arch), the supernet ``settings`` (``create_supernet`` keywords, each in
    :data:`SUPERNET_SETTINGS`' range), the parsed ``arch`` of that space and ``network``, the arch ``model.pt``
    holds (the quantized arch's network part, else ``arch``)."""

    path: Path
    space: str
    supernet: str
    settings: dict
    arch: ArchConfig
    network: ArchConfig


def _arch_error(path: Path, key: str, problem: str) -> ExportError:
    return ExportError(f"{str(path)!r}: {key}: {problem}")


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _brief(value, limit: int = 40) -> str:
    """``repr(value)`` when it is at most ``limit`` characters, else what kind of value it is ("a dict")."""
    return repr(value) if len(repr(value)) <= limit else f"a {_kind(value)}"


def _int_in(path: Path, key: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _arch_error(path, key, f"{_brief(value)} is not an integer in {low}..{high}")
    return value


def _text(path: Path, key: str, value, *, limit: int = 200, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise _arch_error(path, key, f"expected a string of 1..{limit} characters, got "
                                     f"{_kind(value) if not isinstance(value, str) else f'{len(value)} characters'}")
    return value


def _read_json_object(path: Path) -> dict:
    """The JSON object in ``path`` (at most ``MAX_ARCH_JSON_BYTES``, no NaN/Infinity); ``ExportError`` else."""
    try:
        size = path.stat().st_size
        if size > MAX_ARCH_JSON_BYTES:
            raise _arch_error(path, "the file", f"{size} bytes; an arch.json is at most {MAX_ARCH_JSON_BYTES}")
        text = path.read_bytes().decode("utf-8")
        info = json.loads(text, parse_constant=refuse_json_constant)
    except OSError as err:
        raise ExportError(f"cannot read {str(path)!r}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise _arch_error(path, "the file", "not UTF-8 text; expected an export's arch.json (a JSON object)") from None
    except json.JSONDecodeError as err:
        raise _arch_error(path, "the file", f"not JSON ({err.msg} at line {err.lineno} column {err.colno}); "
                                            "expected an export's arch.json") from None
    except (ValueError, RecursionError) as err:
        raise _arch_error(path, "the file", f"not an export's arch.json ({one_line(err)[:100]})") from None
    if not isinstance(info, dict):
        raise _arch_error(path, "the file", f"holds a {_kind(info)}; expected an export's arch.json (a JSON object "
                                            "with space, arch, arch_id)")
    return info


def read_arch_info(path: Path | str) -> ArchInfo:
    """``arch.json`` of the export folder ``path`` as an :class:`ArchInfo`, every key checked before anything is
    built: ``ExportError`` (one line) naming the file, the key and the valid values or range."""
    from supernets import list_supernets

    file = Path(path) / ARCH_FILE
    info = _read_json_object(file)
    unknown = sorted(set(info) - set(_ARCH_KEYS))
    if unknown:
        raise _arch_error(file, f"key {unknown[0][:60]!r}", f"unknown; an arch.json has {', '.join(_ARCH_KEYS)}")
    missing = [key for key in ("format_version", "space", "arch", "arch_id") if key not in info]
    if missing:
        raise _arch_error(file, missing[0], "missing; an export's arch.json has format_version, space, arch, arch_id")
    _int_in(file, "format_version", info["format_version"], FORMAT_VERSION, FORMAT_VERSION)
    space_name = _text(file, "space", info["space"])
    split = split_quantized_name(space_name)
    base = split[0] if split else space_name
    if base not in list_supernets():
        raise _arch_error(file, "space", f"{space_name!r} is not a space with a supernet; expected one of "
                                         f"{', '.join(list_supernets())} (or <space>+q for a quantized arch)")
    settings = info.get("supernet", {})
    if not isinstance(settings, dict):
        raise _arch_error(file, "supernet", f"expected an object of {', '.join(SUPERNET_SETTINGS)}, got "
                                            f"{_kind(settings)}")
    for key in settings:
        if key not in SUPERNET_SETTINGS:
            raise _arch_error(file, f"supernet.{key[:60]}", f"unknown; the supernet settings are "
                                                            f"{', '.join(SUPERNET_SETTINGS)}")
        _int_in(file, f"supernet.{key}", settings[key], *SUPERNET_SETTINGS[key])
    from search_spaces import get_space

    space = get_space(base)  # the arch's settings do not depend on the supernet settings
    if "space_version" in info:
        version = info["space_version"]
        if isinstance(version, bool) or not isinstance(version, (str, int)) or str(version) != str(space.version):
            raise _arch_error(file, "space_version", f"{_brief(version)}; this hwnas has {space.name} version "
                                                     f"{space.version!r}")
    try:
        arch_space = quantized(space, precisions=split[1]) if split else space
    except ValueError as err:
        raise _arch_error(file, "space", f"{space_name!r}: {one_line(err)[:200]}") from None
    if not isinstance(info["arch"], dict):
        raise _arch_error(file, "arch", f"expected a JSON object of {arch_space.name}'s settings, got "
                                        f"{_kind(info['arch'])}")
    try:
        arch = arch_space.parse(info["arch"])
    except NASError as err:
        raise _arch_error(file, "arch", one_line(err)[:300]) from None
    arch_id = _text(file, "arch_id", info["arch_id"], limit=64)
    if arch_id != arch.arch_id:
        raise _arch_error(file, "arch_id", f"{arch_id!r} does not match its arch ({arch.arch_id})")
    network = arch_space.network(arch) if split else arch
    _check_arch_extras(file, info, split is not None, network, space, settings)
    return ArchInfo(path=Path(path), space=space_name, supernet=base, settings=dict(settings), arch=arch,
                    network=network)


def _check_arch_extras(file: Path, info: dict, quantized_arch: bool, network: ArchConfig, space: SearchSpace,
                       settings: dict) -> None:
    """The keys of arch.json that describe the export rather than rebuild it: types, ranges, consistency."""
    if "input_shape" in info:
        shape = info["input_shape"]
        channels = settings.get("in_channels", getattr(space, "in_channels", None))
        expected = [channels, *space.input_shape(network)[1:]]
        if (not isinstance(shape, list) or len(shape) != 4
                or any(isinstance(v, bool) or not isinstance(v, int) for v in shape)
                or not 1 <= shape[0] <= 100_000 or shape[1:] != expected):
            raise _arch_error(file, "input_shape",
                              f"{_brief(shape, 60)}; expected [batch, {', '.join(map(str, expected))}]")
    if info.get("weights") not in (None, "checkpoint", "random-init"):
        raise _arch_error(file, "weights", f"{str(info['weights'])[:40]!r}; expected checkpoint or random-init")
    sha = info.get("checkpoint_sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= _SHA256):
        raise _arch_error(file, "checkpoint_sha256", "expected null or 64 lowercase hex digits")
    if "network_arch_id" in info or "quantization" in info:
        if not quantized_arch:
            key = "network_arch_id" if "network_arch_id" in info else "quantization"
            raise _arch_error(file, key, "only an arch of a quantized space (<space>+q) has one")
        if info.get("network_arch_id", network.arch_id) != network.arch_id:
            raise _arch_error(file, "network_arch_id", f"{str(info['network_arch_id'])[:40]!r} does not match the "
                                                       f"arch's network ({network.arch_id})")
        quant = info.get("quantization", {})
        if not isinstance(quant, dict) or not set(quant) <= {"policy", "quantize", "int8_file"}:
            raise _arch_error(file, "quantization", "expected an object of policy, quantize, int8_file")
        if not isinstance(quant.get("policy", {}), dict):
            raise _arch_error(file, "quantization.policy", f"expected an object, got {_kind(quant['policy'])}")
        if quant.get("quantize") not in (None, "policy", "int8"):
            raise _arch_error(file, "quantization.quantize", "expected null, policy or int8")
        _text(file, "quantization.int8_file", quant.get("int8_file"), optional=True)
    if "accelerator" in info:
        acc = info["accelerator"]
        kinds = {"space": str, "arch_id": str, "arch": dict, "hw_id": (str, int), "file": str}
        if not isinstance(acc, dict) or set(acc) - set(kinds):
            raise _arch_error(file, "accelerator", f"expected an object of {', '.join(kinds)}")
        for key, kind in kinds.items():
            if key in acc and (isinstance(acc[key], bool) or not isinstance(acc[key], kind)):
                raise _arch_error(file, f"accelerator.{key}", f"expected a {getattr(kind, '__name__', 'string')}, "
                                                              f"got {_kind(acc[key])}")


def expected_state(info: ArchInfo):
    """``(module on the meta device, its state dict)``: the shapes and dtypes ``model.pt`` must have, at no
    memory cost, whatever the settings."""
    import torch

    from supernets import create_supernet

    with torch.device("meta"):
        module = create_supernet(info.supernet, **info.settings).extract(info.network)
    return module, module.state_dict()


def check_state(folder: Path, info: ArchInfo, state, expected: dict) -> None:
    """``ExportError`` unless ``state`` has exactly the tensors of ``expected`` (names, shapes, dtypes), finite."""
    import torch

    file = folder / FILES["torch"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ExportError(f"{str(file)!r}: not a state dict (names -> tensors); expected the weights of arch "
                          f"{info.network.arch_id}")
    missing, extra = [k for k in expected if k not in state], [k for k in state if k not in expected]
    if missing or extra:
        raise ExportError(f"{str(file)!r} does not fit {ARCH_FILE} (arch {info.network.arch_id}): "
                          + (f"missing {missing[0]!r}" if missing else f"unexpected {extra[0][:80]!r}")
                          + f" ({len(missing)} missing, {len(extra)} unexpected tensors)")
    for key, want in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            raise ExportError(f"{str(file)!r} does not fit {ARCH_FILE}: {key!r} is {got.dtype} {list(got.shape)}, "
                              f"arch {info.network.arch_id} with supernet settings {info.settings or 'default'} "
                              f"needs {want.dtype} {list(want.shape)}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ExportError(f"{str(file)!r}: {key!r} holds NaN or infinite values")


def load_state(folder: Path, expected: dict):
    """``model.pt`` read with ``torch.load(weights_only=True)`` (nothing is unpickled); a file whose tensors would
    take more memory than ``expected``'s (plus 1 MiB) is refused before it is read."""
    import zipfile

    import torch

    file = folder / FILES["torch"]
    budget = sum(t.numel() * t.element_size() for t in expected.values()) + (1 << 20)
    if not file.is_file():
        raise ExportError(f"cannot load {str(file)!r}: missing; load_subnet needs an export with the torch format")
    try:
        with zipfile.ZipFile(file) as archive:
            size = sum(member.file_size for member in archive.infolist())
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as err:
        raise ExportError(f"cannot load {str(file)!r}: not a torch state-dict file "
                          f"({type(err).__name__}: {one_line(err)[:120]})") from None
    if size > budget:
        raise ExportError(f"{str(file)!r} unpacks to {size} bytes, more than the {budget} bytes of the weights "
                          f"{ARCH_FILE} describes")
    try:
        return torch.load(file, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - missing, truncated or unsafe
        raise ExportError(f"cannot load {str(file)!r}: {type(err).__name__}: {one_line(err)[:200]}") from None

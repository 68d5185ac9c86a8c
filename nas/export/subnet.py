"""``nas export``: one subnet as deployable files (torch state dict, ONNX, TVM shared library, int8 ONNX).

Contract:
- :func:`export_subnet` writes into a new folder ``out`` (refused when it exists and is not
  empty). Everything is built in a temporary sibling folder that is renamed to ``out`` only at
  the end; on any failure (or interrupt) it is removed, so nothing is left behind, and one a
  killed export left is removed by the next export to the same ``out``
  (:func:`nas._folders.staged_folder`). Files:
  ``arch.json`` (space, space version, supernet settings, arch_id, the arch, checkpoint sha256),
  ``model.pt`` (the extracted subnet's ``state_dict``, weights only), ``model.onnx`` (opset 17,
  input ``"input"``, output ``"logits"``), ``model.so`` (TVM, static batch 1, built for this host:
  MetaSchedule records from the (device, space) tuning database where they beat the default
  schedule, the default schedule elsewhere; ``--tune-minutes`` tunes the subnet's tasks first) and
  ``report.json`` (:class:`ExportResult`, with ``tvm_schedule``: "metaschedule-db" or "default", and
  ``tuning``: db path, tasks hit/total, FLOPs coverage, minutes tuned). With ``quantize`` also
  ``model.int8.onnx`` (QDQ) and the report's ``int8`` section (:mod:`nas.export._int8`).
- The arch may be of the supernet's space or of its quantized space (``<space>+q``, a per-block
  precision policy): the files are those of the network part (``space.network(arch)``); ``arch.json``
  and ``report.json`` record the quantized arch, the network's ``network_arch_id`` and (arch.json) the
  policy; an MCU build's entry carries the policy, and the analytic estimates follow its precisions.
- The steps, one function each: build (:func:`nas.export._formats.build_subnet`), one exporter per
  format that writes, reloads and verifies its file (``_formats.export_torch``/``export_onnx``/
  ``export_tvm``, or ``nas.export._targets`` for another device), time (:func:`_time_files`) and report
  (:func:`_result`).
- Every exported artefact is reloaded from disk and checked against the extracted subnet on a
  seeded random batch before the export counts as done: max abs diff and the output magnitude
  go into ``report.json``; a diff above ``PARITY_RTOL`` × max(1, magnitude) fails the export.
- Each reloaded artefact is timed alone on this host (:func:`kernels.timing.measure`, the device
  profile's thread count, torch with denormals flushed as onnxruntime does, only while timing:
  :func:`kernels.runners.denormals_flushed`); the figures carry provenance (``measured``,
  ``profile@version``, IQR). With a latency model the predicted figure goes beside them. The int8
  file is timed taking turns with ``model.onnx`` instead (the report's ``int8.latency_ms``).
- A failure is an :class:`ExportError` (a ``NASError``: one line, exit code 2 from the CLI) whose
  message names the step and the format, e.g. ``"TVM build failed: ..."``.
- :func:`nas.export.from_job.resolve_and_export` (the CLI) takes the weights from a ``nas train`` folder, BN
  recalibrated for the arch on its data, or else from a freshly initialised supernet
  (``"weights": "random-init"``) whose BN statistics are fit to seeded random inputs.
- :func:`load_subnet` rebuilds the ``nn.Module`` of an export folder from ``arch.json`` and
  ``model.pt`` (``torch.load(weights_only=True)``; nothing is unpickled) in eval mode.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from nas._folders import check_new_folder, staged_folder
from nas._results import OMIT_NONE, ReportRecord
from nas.export._common import (BACKEND, FILES, FORMAT_VERSION, FORMATS, OPSET, PARITY_RTOL,  # noqa: F401
                                PARITY_SEED, RANDOM_INIT_SEED, STEP, ExportError, check_tune_minutes, one_line,
                                step_error)
from search_spaces import ArchConfig, NASError, SearchSpace, quantized
from search_spaces.quantization import split_quantized_name
from supernets.checkpoint import file_sha256


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"torch,onnx"`` (or a list) as a tuple of known formats in canonical order."""
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else [str(t).strip() for t in text]
    items = [t for t in items if t]
    unknown = [t for t in items if t not in FORMATS]
    if unknown or not items:
        raise ExportError(f"--format {','.join(items) or text!r}: unknown {unknown}; expected a comma-separated "
                          f"subset of {list(FORMATS)}")
    return tuple(f for f in FORMATS if f in items)


def check_out_dir(out: Path) -> Path:
    """``out`` as a Path, or ``ExportError`` when it exists and is not an empty folder."""
    return check_new_folder(out, ExportError)


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """The keywords of :func:`export_subnet`, checked on construction (formats, timing protocol, minutes,
    quantization settings).

    ``weights`` says where the supernet's weights came from ("checkpoint" or "random-init");
    ``tuning_db`` of None is the (device, space) database of ``nas._cache.default_db_dir``; ``quantize``
    ("policy" or "int8", None for none) also writes ``model.int8.onnx`` (:mod:`nas.export._int8`), calibrated
    with ``calibration_method`` on ``calibration_samples`` inputs, and implies the onnx format."""

    formats: tuple[str, ...] = FORMATS
    device: str = "host-cpu"
    dynamic_batch: bool = False
    weights: str = "checkpoint"
    checkpoint_sha256: str | None = None
    latency_model: Path | None = None
    bn_statistics: str | None = None
    tune_minutes: float = 0.0
    tuning_db: Path | None = None
    rpc_tracker: str | None = None
    warmup: int = 3
    repeats: int = 20
    quantize: str | None = None
    calibration_method: str = "minmax"
    calibration_samples: int = 256

    def __post_init__(self) -> None:
        from kernels.timing import check_protocol
        from nas.export._int8 import check_quantize

        check_quantize(self.quantize, self.calibration_method, self.calibration_samples)
        formats = parse_formats(self.formats)
        if self.quantize is not None:  # the int8 file is compared with (and sits beside) model.onnx
            formats = parse_formats((*formats, "onnx"))
        object.__setattr__(self, "formats", formats)
        check_protocol(warmup=self.warmup, repeats=self.repeats)
        object.__setattr__(self, "tune_minutes", check_tune_minutes(self.tune_minutes))


@dataclass(frozen=True, kw_only=True)
class ExportResult(ReportRecord):
    """What :func:`export_subnet` did; ``to_json()`` is ``report.json``. ``formats`` maps each format to its
    entry (file, sha256, parity, ``latency_ms`` as a measured ``Metric`` dict, ...); ``tvm_schedule`` and
    ``tuning`` are set for a TVM build on this host, ``predicted_latency_ms`` with a latency model,
    ``estimated`` for gpu and mcu profiles (analytic costs). For an arch of a quantized space (``<space>+q``)
    ``space``/``arch``/``arch_id`` are that arch's and ``network_arch_id`` the exported network's; ``int8`` is
    the :class:`~nas.export._int8.Int8Report` of ``--quantize`` (a dict in ``to_json()``). A co-design arch
    (``+hw(...)``) adds ``accelerator`` (:mod:`nas.export._accelerator`: accelerator.toml, hw_id, feasible)."""

    _ERROR = ExportError

    format_version: int
    space: str
    space_version: Any
    arch_id: str
    arch: dict
    weights: str
    checkpoint_sha256: str | None
    bn_statistics: str | None
    device: str
    threads: int
    input_shape: list
    dynamic_batch: bool
    parity_input: str
    formats: dict
    tvm_schedule: str | None = field(default=None, metadata=OMIT_NONE)
    tuning: dict | None = field(default=None, metadata=OMIT_NONE)
    predicted_latency_ms: dict | None = field(default=None, metadata=OMIT_NONE)
    estimated: dict | None = field(default=None, metadata=OMIT_NONE)
    network_arch_id: str | None = field(default=None, metadata=OMIT_NONE)
    int8: Any = field(default=None, metadata=OMIT_NONE)  # Int8Report | None
    accelerator: dict | None = field(default=None, metadata=OMIT_NONE)  # a +hw(...) arch's accelerator.toml
    timing: dict
    steps_s: dict

    def __post_init__(self) -> None:
        from nas.export._int8 import as_int8_report

        object.__setattr__(self, "int8", as_int8_report(self.int8))

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.int8 is not None:
            data["int8"] = self.int8.to_json()
        return data


def export_subnet(supernet, arch: ArchConfig, out: Path, *, formats: Sequence[str] = FORMATS,
                  device: str = "host-cpu", dynamic_batch: bool = False, weights: str = "checkpoint",
                  checkpoint_sha256: str | None = None, latency_model: Path | None = None,
                  bn_statistics: str | None = None, tune_minutes: float = 0.0, tuning_db: Path | None = None,
                  rpc_tracker: str | None = None, warmup: int = 3, repeats: int = 20, quantize: str | None = None,
                  calibration_method: str = "minmax", calibration_samples: int = 256,
                  log: Callable[[str], None] | None = None) -> ExportResult:
    """Export ``supernet.extract(arch)`` into the new folder ``out`` (module docstring); the keywords are
    those of :class:`ExportOptions`. ``arch`` may be of the supernet's space or of its quantized space
    (``<space>+q``): the network part is exported. ``supernet`` should already have BN statistics fit for
    the network (``recalibrate_bn``). ``tune_minutes`` > 0 first tunes the subnet's TVM tasks (missing ones
    first, seeded from the database) for that long and stores the records. ``quantize`` also writes
    ``model.int8.onnx``, calibrated on seeded random inputs (``resolve_and_export`` calibrates on a
    checkpoint's data). ``log`` hears each step's name."""
    options = ExportOptions(formats=formats, device=device, dynamic_batch=dynamic_batch, weights=weights,
                            checkpoint_sha256=checkpoint_sha256, latency_model=latency_model,
                            bn_statistics=bn_statistics, tune_minutes=tune_minutes, tuning_db=tuning_db,
                            rpc_tracker=rpc_tracker, warmup=warmup, repeats=repeats, quantize=quantize,
                            calibration_method=calibration_method, calibration_samples=calibration_samples)
    return export_with_options(supernet, arch, out, options, log=log)


def export_with_options(supernet, arch: ArchConfig, out: Path, options: ExportOptions, *, evaluator=None,
                        log: Callable[[str], None] | None = None) -> ExportResult:
    """:func:`export_subnet` with its keywords as :class:`ExportOptions`. ``evaluator`` (the
    ``CheckpointEvaluator`` the weights came from) gives ``--quantize`` its calibration and validation data."""
    from nas.export._int8 import quant_target

    start = time.perf_counter()
    log = log or (lambda msg: None)
    out = check_out_dir(out)
    device = _Device.of(options.device)
    space = supernet.space
    target = quant_target(space, arch, options.quantize)
    predictor = _latency_model(options.latency_model, space)
    from nas.export._formats import build_subnet

    t = time.perf_counter()
    try:
        subnet = build_subnet(supernet, target.network, dynamic_batch=options.dynamic_batch)
    except Exception as err:  # noqa: BLE001
        raise step_error("subnet extraction", err) from err
    steps = {"extract_s": time.perf_counter() - t}
    with staged_folder(out, tag="export-") as folder:
        _write_arch_info(folder, space, target, subnet.input_shape, options)
        entries, runners = {}, {}
        for fmt in options.formats:
            t = time.perf_counter()
            log(f"exporting {fmt}")
            entries[fmt], runner = _export_format(fmt, subnet, folder, options, device, space, log)
            steps[f"{fmt}_s"] = time.perf_counter() - t
            if device.on_host:
                runners[fmt] = runner
        t = time.perf_counter()
        log("timing the exported files")
        for fmt, latency in _time_files(runners, options, device).items():
            entries[fmt].update(latency_ms=latency, backend=BACKEND[fmt])
        steps["latency_s"] = time.perf_counter() - t
        int8 = _export_int8(subnet, folder, supernet, target, options, device, runners, evaluator, log, steps)
        runners.clear()  # the reloaded files are released before the folder is renamed
        if target.qarch is not None and "tvm" in entries and device.profile.kind == "mcu":
            from nas.export._int8 import mcu_policy

            entries["tvm"]["quantization"] = mcu_policy(target, int8)
        result = _result(space=space, target=target, input_shape=subnet.input_shape, options=options, device=device,
                         entries=entries, predictor=predictor, int8=int8,
                         steps={**steps, "total_s": time.perf_counter() - start})
        (folder / "report.json").write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    return result


def _export_int8(subnet, folder: Path, supernet, target, options: ExportOptions, device: "_Device", runners: dict,
                 evaluator, log: Callable[[str], None], steps: dict):
    """The ``--quantize`` step (:func:`nas.export._int8.export_int8`), timed into ``steps``; None without it."""
    if options.quantize is None:
        return None
    from nas.export._int8 import export_int8

    t = time.perf_counter()
    int8 = export_int8(subnet, folder, supernet=supernet, target=target, options=options, device=device,
                       runners=runners, evaluator=evaluator, log=log)
    steps["int8_s"] = time.perf_counter() - t
    return int8


@dataclass(frozen=True)
class _Device:
    """The export's device profile, whether it is this host, and the thread count files are timed with."""

    profile: Any
    on_host: bool
    threads: int

    @classmethod
    def of(cls, name: str) -> "_Device":
        from nas.export._targets import is_host_profile

        profile = _export_profile(name)
        on_host = is_host_profile(profile)
        return cls(profile, on_host, (profile.spec.threads if on_host else 0) or (os.cpu_count() or 1))


def _export_profile(device: str):
    """The export's device profile: this host, a board (RPC), a GPU or an MCU; not an FPGA model."""
    from hw_profiles import get_profile

    profile = get_profile(device)
    if profile.kind == "fpga":
        raise ExportError(f"--device: {profile.ref} is an fpga profile (an analytic accelerator model) with no TVM "
                          "target; use host-cpu, a board (rpi4), a gpu (h100) or an mcu (stm32f746) profile")
    return profile


def _latency_model(path: Path | None, space: SearchSpace):
    if path is None:
        return None
    from nas.profiling.latency_model import LatencyModel

    return LatencyModel.load(Path(path), space=space)


def _supernet_settings(space: SearchSpace) -> dict:
    """The ``create_supernet`` keywords that shape the weights (head size, input channels)."""
    return {k: int(getattr(space, k)) for k in ("num_classes", "in_channels") if hasattr(space, k)}


def _write_arch_info(folder: Path, space: SearchSpace, target, input_shape, options: ExportOptions) -> None:
    """``arch.json``; for a quantized space's arch its space and arch, the network's arch_id and the policy."""
    arch = target.arch
    info = {"format_version": FORMAT_VERSION, "space": target.space(space).name, "space_version": space.version,
            "supernet": _supernet_settings(space), "arch_id": arch.arch_id, "arch": arch.to_dict(),
            "input_shape": list(input_shape), "weights": options.weights,
            "checkpoint_sha256": options.checkpoint_sha256}
    if target.qarch is not None:
        from nas.export._int8 import INT8_FILE

        info["network_arch_id"] = target.network.arch_id
        info["quantization"] = {"policy": target.policy.to_dict(), "quantize": target.mode,
                                "int8_file": INT8_FILE if target.mode is not None else None}
    (folder / "arch.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _export_format(fmt: str, subnet, folder: Path, options: ExportOptions, device: _Device, space: SearchSpace,
                   log: Callable[[str], None]) -> tuple[dict, Any]:
    """Write, reload and verify one format: ``(report entry with file and sha256, runner or None)``.
    A TVM build for another device goes through :mod:`nas.export._targets` and is not timed here."""
    from nas.export import _formats

    try:
        if fmt == "tvm" and not device.on_host:
            from nas.export._common import verified
            from nas.export._targets import export_tvm_for_device

            label = f"TVM ({device.profile.ref})"
            entry, runner = export_tvm_for_device(
                subnet.module, subnet.x, subnet.reference, folder, profile=device.profile,
                parity=lambda reference, got: verified(label, reference, got), rpc_tracker=options.rpc_tracker,
                warmup=options.warmup, repeats=options.repeats), None
        elif fmt == "tvm":
            from nas._cache import default_db_dir

            db = Path(options.tuning_db) if options.tuning_db is not None else default_db_dir(device.profile, space)
            entry, runner = _formats.export_tvm(subnet, folder, threads=device.threads, log=log,
                                                tuning=_formats.TvmTuning(db=db, minutes=options.tune_minutes))
        elif fmt == "onnx":
            entry, runner = _formats.export_onnx(subnet, folder, threads=device.threads,
                                                 dynamic_batch=options.dynamic_batch)
        else:
            entry, runner = _formats.export_torch(subnet, folder, threads=device.threads)
    except Exception as err:  # noqa: BLE001 - every failure names its step
        raise step_error(STEP[fmt], err) from err
    entry.setdefault("file", FILES[fmt])
    entry["sha256"] = file_sha256(folder / entry["file"])
    if not device.on_host and "latency_ms" not in entry:
        entry["latency_note"] = f"not timed: {device.profile.ref} is not this host"
    return entry, runner


def _time_files(runners: dict, options: ExportOptions, device: _Device) -> dict[str, dict]:
    """Each reloaded file timed alone (absolute numbers, no busy-waiting neighbours), with torch flushing
    denormals as onnxruntime does, only for the timing: format -> measured ``Metric`` dict."""
    from hw_profiles.metric import Metric
    from kernels.runners import denormals_flushed
    from kernels.timing import measure

    latencies = {}
    with denormals_flushed():
        for fmt, runner in runners.items():
            try:
                timing = measure({fmt: runner}, warmup=options.warmup, repeats=options.repeats,
                                 threads=device.threads)[fmt]
            except Exception as err:  # noqa: BLE001
                raise step_error(f"{fmt} latency measurement", err) from err
            latencies[fmt] = Metric(value=timing.median_ms, unit="ms", source="measured", profile=device.profile.ref,
                                    spread=timing.iqr_ms).to_dict()
    return latencies


def _result(*, space: SearchSpace, target, input_shape, options: ExportOptions, device: _Device,
            entries: dict, predictor, int8, steps: dict) -> ExportResult:
    """The report: the export's inputs, each format's entry, the prediction and estimates beside them (the
    estimates of a quantized arch follow its policy's precisions), the int8 section."""
    predicted = estimated = None
    arch, arch_space = target.arch, target.space(space)
    if predictor is not None:
        metric = predictor.predict([target.network])[0]
        predicted = {**metric.to_dict(), "backend": predictor.backend, "threads": predictor.threads}
    if device.profile.kind in ("gpu", "mcu"):
        from hw_profiles import cost_model_for

        layers = arch_space.layers(arch)
        estimated = {k: m.to_dict() for k, m in cost_model_for(device.profile).metrics(layers).items()}
    tvm = entries.get("tvm") if device.on_host else None
    return ExportResult(
        format_version=FORMAT_VERSION, space=arch_space.name, space_version=space.version, arch_id=arch.arch_id,
        arch=arch.to_dict(), weights=options.weights, checkpoint_sha256=options.checkpoint_sha256,
        bn_statistics=options.bn_statistics, device=device.profile.ref, threads=device.threads,
        input_shape=list(input_shape), dynamic_batch=options.dynamic_batch,
        parity_input=f"torch.randn seeded {PARITY_SEED}", formats=entries,
        tvm_schedule=tvm["tvm_schedule"] if tvm else None, tuning=tvm["tuning"] if tvm else None,
        predicted_latency_ms=predicted, estimated=estimated,
        network_arch_id=target.network.arch_id if target.qarch is not None else None, int8=int8,
        timing={"warmup": options.warmup, "repeats": options.repeats},
        steps_s={k: round(v, 3) for k, v in steps.items()})


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


def _int_in(path: Path, key: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if len(repr(value)) <= 40 else f"a {_kind(value)}"
        raise _arch_error(path, key, f"{shown} is not an integer in {low}..{high}")
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
        info = json.loads(text, parse_constant=_no_json_constant)
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


def _no_json_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


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
            shown = repr(version) if len(repr(version)) <= 40 else f"a {_kind(version)}"
            raise _arch_error(file, "space_version", f"{shown}; this hwnas has {space.name} version {space.version!r}")
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
            shown = repr(shape) if len(repr(shape)) <= 60 else f"a {_kind(shape)}"
            raise _arch_error(file, "input_shape", f"{shown}; expected [batch, {', '.join(map(str, expected))}]")
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


def _expected_state(info: ArchInfo):
    """``(module on the meta device, its state dict)``: the shapes and dtypes ``model.pt`` must have, at no
    memory cost, whatever the settings."""
    import torch

    from supernets import create_supernet

    with torch.device("meta"):
        module = create_supernet(info.supernet, **info.settings).extract(info.network)
    return module, module.state_dict()


def _check_state(folder: Path, info: ArchInfo, state, expected: dict) -> None:
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


def _load_state(folder: Path, expected: dict):
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


def load_subnet(path: Path | str):
    """The ``nn.Module`` of an export folder (``arch.json`` + ``model.pt``), in eval mode.

    ``arch.json`` is checked key by key first (:func:`read_arch_info`); the module is laid out on the meta
    device (no memory), ``model.pt`` is read with ``torch.load(weights_only=True)`` and its tensors must match
    that layout exactly (names, shapes, dtypes, finite) before any memory is given to the module. Every fault
    is one ``ExportError`` naming the file and the key."""
    folder = Path(path)
    info = read_arch_info(folder)
    module, expected = _expected_state(info)
    state = _load_state(folder, expected)
    _check_state(folder, info, state, expected)
    module = module.to_empty(device="cpu")
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ExportError(f"{folder}: model.pt does not fit arch {info.network.arch_id}: "
                          f"{one_line(err)[:300]}") from None
    return module.eval()

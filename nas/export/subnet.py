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
  schedule, the default schedule elsewhere; ``--tune-minutes`` tunes the subnet's tasks first, and with
  ``quantize`` the int8 build's own tasks as long again, ``nas.export._int8_tvm``) and
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
  ``model.pt`` (``torch.load(weights_only=True)``; nothing is unpickled) in eval mode, both files checked
  first (:mod:`nas.export._arch_json`: :func:`read_arch_info`, :class:`ArchInfo`, the weight checks).
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
from nas.export._arch_json import (ARCH_FILE, MAX_ARCH_JSON_BYTES, SUPERNET_SETTINGS, ArchInfo,  # noqa: F401
                                   check_state, expected_state, load_state, read_arch_info)
from search_spaces import ArchConfig, SearchSpace
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
    first, seeded from the database) for that long and stores the records (with ``quantize`` and the tvm
    format, the int8 build's tasks too, into its own database). ``quantize`` also writes
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
        int8 = _export_int8(subnet, folder, supernet, target, options, device, runners, evaluator, log, steps, space)
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
                 evaluator, log: Callable[[str], None], steps: dict, space: SearchSpace):
    """The ``--quantize`` step (:func:`nas.export._int8.export_int8`), timed into ``steps``; None without it."""
    if options.quantize is None:
        return None
    from nas.export._int8 import export_int8

    t = time.perf_counter()
    int8 = export_int8(subnet, folder, supernet=supernet, target=target, options=options, device=device,
                       runners=runners, evaluator=evaluator, log=log, space=space)
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
    (folder / ARCH_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


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
            entry, runner = _formats.export_tvm(subnet, folder, threads=device.threads, log=log,
                                                tuning=_formats.host_tuning(options.tuning_db, options.tune_minutes,
                                                                            device.profile, space))
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


def load_subnet(path: Path | str):
    """The ``nn.Module`` of an export folder (``arch.json`` + ``model.pt``), in eval mode.

    ``arch.json`` is checked key by key first (:func:`read_arch_info`); the module is laid out on the meta
    device (no memory), ``model.pt`` is read with ``torch.load(weights_only=True)`` and its tensors must match
    that layout exactly (names, shapes, dtypes, finite) before any memory is given to the module. Every fault
    is one ``ExportError`` naming the file and the key."""
    folder = Path(path)
    info = read_arch_info(folder)
    module, expected = expected_state(info)
    state = load_state(folder, expected)
    check_state(folder, info, state, expected)
    module = module.to_empty(device="cpu")
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ExportError(f"{folder}: model.pt does not fit arch {info.network.arch_id}: "
                          f"{one_line(err)[:300]}") from None
    return module.eval()

"""``nas export``: one subnet as deployable files (torch state dict, ONNX, TVM shared library).

Contract:
- :func:`export_subnet` writes into a new folder ``out`` (refused when it exists and is not
  empty). Everything is built in a temporary sibling folder that is renamed to ``out`` only at
  the end; on any failure (or interrupt) it is removed, so nothing is left behind. Files:
  ``arch.json`` (space, space version, supernet settings, arch_id, the arch, checkpoint sha256),
  ``model.pt`` (the extracted subnet's ``state_dict``, weights only), ``model.onnx`` (opset 17,
  input ``"input"``, output ``"logits"``), ``model.so`` (TVM, static batch 1, built for this host:
  MetaSchedule records from the (device, space) tuning database where they beat the default
  schedule, the default schedule elsewhere; ``--tune-minutes`` tunes the subnet's tasks first) and
  ``report.json`` (with ``tvm_schedule``: "metaschedule-db" or "default", and ``tuning``: db path,
  tasks hit/total, FLOPs coverage, minutes tuned).
- Every exported artefact is reloaded from disk and checked against the extracted subnet on a
  seeded random batch before the export counts as done: max abs diff and the output magnitude
  go into ``report.json``; a diff above ``PARITY_RTOL`` × max(1, magnitude) fails the export.
- Each reloaded artefact is timed alone on this host (:func:`kernels.timing.measure`, the device
  profile's thread count, torch with denormals flushed as onnxruntime does); the figures carry
  provenance (``measured``, ``profile@version``, IQR).
  With a latency model the predicted figure goes beside them.
- A failure is an :class:`ExportError` (a ``NASError``: one line, exit code 2 from the CLI) whose
  message names the step and the format, e.g. ``"TVM build failed: ..."``.
- :func:`nas.export._job_member.resolve_and_export` (the CLI) takes the weights from a ``nas train`` folder, BN
  recalibrated for the arch on its data, or else from a freshly initialised supernet
  (``"weights": "random-init"``) whose BN statistics are fit to seeded random inputs.
- :func:`load_subnet` rebuilds the ``nn.Module`` of an export folder from ``arch.json`` and
  ``model.pt`` (``torch.load(weights_only=True)``; nothing is unpickled) in eval mode.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from search_spaces import ArchConfig, NASError, SearchSpace
from supernets.checkpoint import file_sha256

FORMATS = ("torch", "onnx", "tvm")
FORMAT_VERSION = 1
OPSET = 17
PARITY_RTOL = 1e-3  # allowed max abs diff per unit of output magnitude (TVM measured ~3e-4 / 150)
PARITY_SEED = 0
RANDOM_INIT_SEED = 0  # the random inputs that fit BN statistics when there is no checkpoint
FILES = {"torch": "model.pt", "onnx": "model.onnx", "tvm": "model.so"}
BACKEND = {"torch": "torch", "onnx": "onnxruntime", "tvm": "tvm"}
_STEP = {"torch": "torch export", "onnx": "ONNX export", "tvm": "TVM build"}


class ExportError(NASError, RuntimeError):
    """An export input is unusable or a step failed; the message names the step and the format."""


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
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"--out {str(out)!r} exists and is not empty; choose a new folder or remove it")
    return out


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:400] + "...") if len(text) > 400 else text


def _step_error(fmt_step: str, err: BaseException) -> ExportError:
    """``err`` as one line that starts with the step ("ONNX export failed: ...")."""
    if isinstance(err, ExportError):
        return err
    message = _one_line(err)
    head = fmt_step.split()[0]
    if message.lower().startswith(head.lower()) and " failed" in message[:40]:
        return ExportError(message)  # a KernelError that already names its step (e.g. "TVM import failed: ...")
    return ExportError(f"{fmt_step} failed: {type(err).__name__}: {message}" if not isinstance(err, NASError)
                       else f"{fmt_step} failed: {message}")


def _supernet_settings(space: SearchSpace) -> dict:
    """The ``create_supernet`` keywords that shape the weights (head size, input channels)."""
    return {k: int(getattr(space, k)) for k in ("num_classes", "in_channels") if hasattr(space, k)}


def _parity(reference: np.ndarray, got: np.ndarray) -> dict:
    diff = float(np.max(np.abs(reference.astype(np.float64) - got.astype(np.float64))))
    magnitude = float(np.max(np.abs(reference)))
    return {"max_abs_diff": diff, "output_max_abs": magnitude, "tolerance": PARITY_RTOL * max(1.0, magnitude)}


def _check_parity(label: str, parity: dict) -> None:
    if not np.isfinite(parity["max_abs_diff"]) or parity["max_abs_diff"] > parity["tolerance"]:
        raise ExportError(f"{label} parity check failed: max abs diff {parity['max_abs_diff']:.3g} > tolerance "
                          f"{parity['tolerance']:.3g} (outputs up to {parity['output_max_abs']:.3g})")


def _export_profile(device: str):
    """The export's device profile: this host, a board (RPC), a GPU or an MCU; not an FPGA model."""
    from hw_profiles import get_profile

    profile = get_profile(device)
    if profile.kind == "fpga":
        raise ExportError(f"--device: {profile.ref} is an fpga profile (an analytic accelerator model) with no TVM "
                          "target; use host-cpu, a board (rpi4), a gpu (h100) or an mcu (stm32f746) profile")
    return profile


def _checked_parity(label: str) -> Callable:
    def check(reference: np.ndarray, got: np.ndarray) -> dict:
        parity = _parity(reference, got)
        _check_parity(label, parity)
        return parity
    return check


def export_subnet(supernet, arch: ArchConfig, out: Path, *, formats: Sequence[str] = FORMATS,
                  device: str = "host-cpu", dynamic_batch: bool = False, weights: str = "checkpoint",
                  checkpoint_sha256: str | None = None, latency_model: Path | None = None,
                  bn_statistics: str | None = None, tune_minutes: float = 0.0, tuning_db: Path | None = None,
                  rpc_tracker: str | None = None, warmup: int = 3, repeats: int = 20, log: Callable[[str], None] | None = None) -> dict:
    """Export ``supernet.extract(arch)`` into the new folder ``out``; returns the report (module docstring).

    ``weights`` says where the supernet's weights came from ("checkpoint" or "random-init");
    ``supernet`` should already have BN statistics fit for ``arch`` (``recalibrate_bn``).
    The TVM library is compiled from the (device, space) tuning database (``tuning_db``, default
    ``nas.export.tuning.default_db_dir``) when it exists; ``tune_minutes`` > 0 first tunes the subnet's
    tasks (missing ones first, seeded from the database) for that long and stores the records."""
    import torch

    from kernels.timing import check_protocol

    start = time.perf_counter()
    log = log or (lambda msg: None)
    formats = parse_formats(formats)
    check_protocol(warmup=warmup, repeats=repeats)
    if isinstance(tune_minutes, bool) or not isinstance(tune_minutes, (int, float)) or not 0 <= tune_minutes < float("inf"):
        raise ExportError(f"--tune-minutes must be a number >= 0, got {tune_minutes!r}")
    out = check_out_dir(out)
    from nas.export._targets import export_tvm_for_device, is_host_profile

    profile = _export_profile(device)
    on_host = is_host_profile(profile)
    threads = (profile.spec.threads if on_host else 0) or (os.cpu_count() or 1)
    space = supernet.space
    arch = space.validate(arch)
    predictor = None
    if latency_model is not None:
        from nas.profiling.latency_model import LatencyModel

        predictor = LatencyModel.load(Path(latency_model), space=space)

    steps: dict[str, float] = {}
    t = time.perf_counter()
    try:
        module = supernet.extract(arch).eval()
    except Exception as err:  # noqa: BLE001
        raise _step_error("subnet extraction", err) from err
    shape = supernet.input_shape(arch)
    gen = torch.Generator().manual_seed(PARITY_SEED)
    x = torch.randn(shape, generator=gen)
    batch_x = torch.randn((3, *shape[1:]), generator=gen) if dynamic_batch else None
    with torch.no_grad():
        reference = module(x).numpy()
        batch_reference = module(batch_x).numpy() if batch_x is not None else None
    steps["extract_s"] = time.perf_counter() - t

    created = _missing_parents(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    report = {
        "format_version": FORMAT_VERSION, "space": space.name, "space_version": space.version,
        "arch_id": arch.arch_id, "arch": arch.to_dict(), "weights": weights, "checkpoint_sha256": checkpoint_sha256,
        "bn_statistics": bn_statistics, "device": profile.ref, "threads": threads, "input_shape": list(shape), "dynamic_batch": dynamic_batch,
        "parity_input": f"torch.randn seeded {PARITY_SEED}", "formats": {},
    }
    try:
        info = {"format_version": FORMAT_VERSION, "space": space.name, "space_version": space.version,
                "supernet": _supernet_settings(space), "arch_id": arch.arch_id, "arch": arch.to_dict(),
                "input_shape": list(shape), "weights": weights, "checkpoint_sha256": checkpoint_sha256}
        (tmp / "arch.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        runners = {}
        from nas._cache import default_db_dir

        tuning = {"db": Path(tuning_db) if tuning_db is not None else default_db_dir(profile, space),
                  "minutes": float(tune_minutes), "log": log}
        for fmt in formats:
            t = time.perf_counter()
            log(f"exporting {fmt}")
            try:
                if fmt == "tvm" and not on_host:
                    entry, runner = export_tvm_for_device(
                        module, x, reference, tmp, profile=profile, parity=_checked_parity(f"TVM ({profile.ref})"),
                        rpc_tracker=rpc_tracker, warmup=warmup, repeats=repeats), None
                else:
                    extra = {"tuning": tuning} if fmt == "tvm" else {}
                    entry, runner = _EXPORTERS[fmt](module, x, reference, tmp, threads=threads,
                                                    dynamic_batch=dynamic_batch, batch=(batch_x, batch_reference),
                                                    **extra)
            except Exception as err:  # noqa: BLE001 - every failure names its step
                raise _step_error(_STEP[fmt], err) from err
            entry.setdefault("file", FILES[fmt])
            entry["sha256"] = file_sha256(tmp / entry["file"])
            steps[f"{fmt}_s"] = time.perf_counter() - t
            report["formats"][fmt] = entry
            if not on_host:
                if "latency_ms" not in entry:
                    entry["latency_note"] = f"not timed: {profile.ref} is not this host"
                continue
            runners[fmt] = runner
            if fmt == "tvm":
                report["tvm_schedule"] = entry["tvm_schedule"]
                report["tuning"] = entry["tuning"]
        t = time.perf_counter()
        log("timing the exported files")
        from hw_profiles.metric import Metric
        from kernels.timing import measure

        torch.set_flush_denormal(True)  # as onnxruntime does (and CheckpointEvaluator): denormals are slow
        for fmt, runner in runners.items():  # each one alone: absolute numbers, no busy-waiting neighbours
            try:
                timing = measure({fmt: runner}, warmup=warmup, repeats=repeats, threads=threads)[fmt]
            except Exception as err:  # noqa: BLE001
                raise _step_error(f"{fmt} latency measurement", err) from err
            report["formats"][fmt]["latency_ms"] = Metric(
                value=timing.median_ms, unit="ms", source="measured", profile=profile.ref,
                spread=timing.iqr_ms).to_dict()
            report["formats"][fmt]["backend"] = BACKEND[fmt]
        runners.clear()
        steps["latency_s"] = time.perf_counter() - t
        if predictor is not None:
            metric = predictor.predict([arch])[0]
            report["predicted_latency_ms"] = {**metric.to_dict(), "backend": predictor.backend,
                                              "threads": predictor.threads}
        if profile.kind in ("gpu", "mcu"):
            from hw_profiles import cost_model_for

            report["estimated"] = {k: m.to_dict() for k, m in cost_model_for(profile).metrics(space.layers(arch)).items()}
        steps["total_s"] = time.perf_counter() - start
        report["timing"] = {"warmup": warmup, "repeats": repeats}
        report["steps_s"] = {k: round(v, 3) for k, v in steps.items()}
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # parents this call made, deepest first, if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def _missing_parents(out: Path) -> list[Path]:
    missing, folder = [], out.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def _export_torch(module, x, reference, folder: Path, *, threads: int, dynamic_batch: bool, batch) -> tuple:
    import torch

    from kernels.runners import TorchRunner

    torch.save(module.state_dict(), folder / FILES["torch"])
    loaded = load_subnet(folder)
    with torch.no_grad():
        parity = _parity(reference, loaded(x).numpy())
    if parity["max_abs_diff"] != 0.0:
        raise ExportError(f"torch reload check failed: the reloaded subnet differs by {parity['max_abs_diff']:.3g}")
    return {"parity": {**parity, "against": "the extracted subnet", "reloaded": True}}, \
        TorchRunner(loaded, x, threads=threads)


def _export_onnx(module, x, reference, folder: Path, *, threads: int, dynamic_batch: bool, batch) -> tuple:
    from kernels.onnx_export import export_onnx
    from kernels.runners import OrtFileRunner

    path = export_onnx(module, x, folder / FILES["onnx"], opset=OPSET, dynamic_batch=dynamic_batch)
    runner = OrtFileRunner(path, x.numpy(), threads=threads, spin=False)
    parity = _parity(reference, runner.run(x.numpy()))
    _check_parity("ONNX (onnxruntime)", parity)
    entry = {"opset": OPSET, "input": "input", "output": "logits",
             "parity": {**parity, "against": "the extracted subnet (torch)", "runtime": "onnxruntime"}}
    batch_x, batch_reference = batch
    if batch_x is not None:
        parity3 = _parity(batch_reference, runner.run(batch_x.numpy()))
        _check_parity("ONNX (onnxruntime) dynamic batch", parity3)
        entry["parity_batch3"] = parity3
    return entry, runner


def _export_tvm(module, x, reference, folder: Path, *, threads: int, dynamic_batch: bool, batch,
                tuning: dict | None = None) -> tuple:
    from kernels.tvm import build as tvm_build, db as tvm_db
    from kernels.onnx_export import export_onnx
    from kernels.runners import TvmLibraryRunner
    from kernels.tvm.schedule import legalize

    target = tvm_build.host_target(threads)
    db_dir = Path(tuning["db"]) if tuning else None
    minutes = float(tuning["minutes"]) if tuning else 0.0
    summary = None
    with tempfile.TemporaryDirectory(prefix="tvm-", dir=folder) as work:
        onnx_path = export_onnx(module, x, Path(work) / "static.onnx", opset=OPSET)  # TVM ships static shapes
        mod = tvm_build.import_onnx(onnx_path)
        if minutes > 0:
            from kernels.tvm.tune import tune

            tasks = tvm_db.merge_tasks(tvm_db.extract_tasks(legalize(mod, target), target))
            tuning["log"](f"tuning {len(tasks)} TVM tasks for {minutes:g} min into {db_dir}")
            summary = tune(tasks, target, db_dir, budget_s=minutes * 60.0)
        database = None
        if db_dir is not None and (db_dir / tvm_db.RECORD_FILE).exists():
            database = tvm_db.open_database(db_dir, create=False)
        executable, stats = tvm_db.compile_relax(
            mod, target, database, default_times=tvm_db.load_default_times(db_dir) if database is not None else None)
    tvm_build.export_library(executable, folder / FILES["tvm"])
    runner = TvmLibraryRunner(folder / FILES["tvm"], x.numpy(), threads=threads)  # reloaded from disk
    parity = _parity(reference, runner.run(x.numpy()))
    _check_parity("TVM (reloaded model.so)", parity)
    schedule = "metaschedule-db" if stats.tasks_hit else "default"
    provenance = {"db": str(db_dir) if db_dir is not None else None, "tasks_hit": stats.tasks_hit,
                  "tasks_total": stats.tasks_total, "flops_coverage": round(stats.flops_coverage, 4),
                  "minutes_tuned": round(summary.elapsed_s / 60.0, 3) if summary is not None else 0.0,
                  "trials": summary.trials if summary is not None else 0}
    return {"schedule": ("MetaSchedule records from the tuning database, default schedule for the other tasks"
                         if stats.tasks_hit else "untuned (kernels.tvm.build.default_schedule)"),
            "tvm_schedule": schedule, "tuning": provenance, "target": str(target),
            "batch": int(x.shape[0]), "runtime": "relax.VirtualMachine",
            "parity": {**parity, "against": "the extracted subnet (torch)", "reloaded": True}}, runner


_EXPORTERS = {"torch": _export_torch, "onnx": _export_onnx, "tvm": _export_tvm}


def load_subnet(path: Path | str):
    """The ``nn.Module`` of an export folder (``arch.json`` + ``model.pt``), in eval mode.

    Rebuilds ``create_supernet(space, **settings).extract(arch)`` and loads the saved state dict
    with ``torch.load(weights_only=True)``. ``ExportError`` when a file is missing or does not fit."""
    import torch

    from supernets import create_supernet

    folder = Path(path)
    try:
        info = json.loads((folder / "arch.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExportError(f"cannot read {str(folder / 'arch.json')!r}: {_one_line(err)}") from None
    if not isinstance(info, dict) or not {"space", "arch", "arch_id"} <= set(info):
        raise ExportError(f"{str(folder / 'arch.json')!r} is not an export's arch.json (needs space, arch, arch_id)")
    settings = info.get("supernet") or {}
    supernet = create_supernet(info["space"], **{k: int(v) for k, v in settings.items()})
    space = supernet.space
    if str(info.get("space_version", space.version)) != str(space.version):
        raise ExportError(f"{folder}: exported from {info['space']} version {info['space_version']}, "
                          f"this hwnas has version {space.version}")
    arch = space.parse(info["arch"])
    if arch.arch_id != info["arch_id"]:
        raise ExportError(f"{folder}: arch_id {info['arch_id']} does not match its arch ({arch.arch_id})")
    try:
        state = torch.load(folder / FILES["torch"], weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - missing, truncated or unsafe
        raise ExportError(f"cannot load {str(folder / FILES['torch'])!r}: {type(err).__name__}: "
                          f"{_one_line(err)[:200]}") from None
    module = supernet.extract(arch)
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ExportError(f"{folder}: model.pt does not fit arch {arch.arch_id}: "
                          f"{_one_line(err)[:300]}") from None
    return module.eval()

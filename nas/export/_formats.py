"""The steps of ``nas export`` that make and check one file each (see :mod:`nas.export.subnet`).

:func:`build_subnet` extracts the subnet and its seeded parity inputs and outputs; :func:`export_torch`,
:func:`export_onnx` and :func:`export_tvm` write one format into the export folder, reload it from
disk and verify it against the extracted subnet (:func:`nas.export._common.verified`). Each returns
``(entry, runner)``: the format's ``report.json`` entry and a runner of the reloaded file for timing.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nas.export._common import FILES, OPSET, PARITY_SEED, ExportError, parity, verified


@dataclass(frozen=True)
class Subnet:
    """The extracted subnet (eval mode), its seeded batch-1 input and output, and with a dynamic batch a
    batch-3 input and output too."""

    module: Any
    x: Any
    reference: np.ndarray
    batch_x: Any = None
    batch_reference: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.x.shape)


@dataclass(frozen=True)
class TvmTuning:
    """Where the host's TVM build finds MetaSchedule records (``db``) and how long to tune first (minutes)."""

    db: Path | None
    minutes: float = 0.0


def host_tuning(tuning_db, minutes: float, profile, space) -> TvmTuning:
    """Where this host's TVM builds find and tune records: ``tuning_db`` (a path, None: the (device, space)
    database of ``nas._cache.default_db_dir``), tuning ``minutes`` first."""
    from nas._cache import default_db_dir

    return TvmTuning(db=Path(tuning_db) if tuning_db is not None else default_db_dir(profile, space), minutes=minutes)


def build_subnet(supernet, arch, *, dynamic_batch: bool) -> Subnet:
    """``supernet.extract(arch)`` with its parity inputs (``torch.randn`` seeded ``PARITY_SEED``) and outputs."""
    import torch

    module = supernet.extract(arch).eval()
    shape = supernet.input_shape(arch)
    gen = torch.Generator().manual_seed(PARITY_SEED)
    x = torch.randn(shape, generator=gen)
    batch_x = torch.randn((3, *shape[1:]), generator=gen) if dynamic_batch else None
    with torch.no_grad():
        return Subnet(module=module, x=x, reference=module(x).numpy(), batch_x=batch_x,
                      batch_reference=module(batch_x).numpy() if batch_x is not None else None)


def export_torch(subnet: Subnet, folder: Path, *, threads: int) -> tuple[dict, Any]:
    """``model.pt`` (the state dict); reloaded with :func:`nas.export.subnet.load_subnet`, it must match exactly."""
    import torch

    from kernels.runners import TorchRunner
    from nas.export.subnet import load_subnet

    torch.save(subnet.module.state_dict(), folder / FILES["torch"])
    loaded = load_subnet(folder)
    with torch.no_grad():
        result = parity(subnet.reference, loaded(subnet.x).numpy())
    if result["max_abs_diff"] != 0.0:
        raise ExportError(f"torch reload check failed: the reloaded subnet differs by {result['max_abs_diff']:.3g}")
    return {"parity": {**result, "against": "the extracted subnet", "reloaded": True}}, \
        TorchRunner(loaded, subnet.x, threads=threads)


def export_onnx(subnet: Subnet, folder: Path, *, threads: int, dynamic_batch: bool) -> tuple[dict, Any]:
    """``model.onnx`` (opset ``OPSET``), checked in onnxruntime; with ``dynamic_batch`` at batch 3 too."""
    from kernels.onnx_export import export_onnx as write_onnx
    from kernels.runners import OrtFileRunner

    x = subnet.x.numpy()
    path = write_onnx(subnet.module, subnet.x, folder / FILES["onnx"], opset=OPSET, dynamic_batch=dynamic_batch)
    runner = OrtFileRunner(path, x, threads=threads, spin=False)
    entry = {"opset": OPSET, "input": "input", "output": "logits",
             "parity": {**verified("ONNX (onnxruntime)", subnet.reference, runner.run(x)),
                        "against": "the extracted subnet (torch)", "runtime": "onnxruntime"}}
    if subnet.batch_x is not None:
        entry["parity_batch3"] = verified("ONNX (onnxruntime) dynamic batch", subnet.batch_reference,
                                          runner.run(subnet.batch_x.numpy()))
    return entry, runner


def export_tvm(subnet: Subnet, folder: Path, *, threads: int, tuning: TvmTuning,
               log: Callable[[str], None]) -> tuple[dict, Any]:
    """``model.so`` for this host from the tuning database (tuned first when ``tuning.minutes`` > 0),
    reloaded from disk and checked in ``relax.VirtualMachine``."""
    from kernels.runners import TvmLibraryRunner
    from kernels.tvm import build as tvm_build

    target = tvm_build.host_target(threads)
    selection, summary = _compile_tvm(subnet, folder, target, tuning, threads, log)
    tvm_build.export_library(selection.executable, folder / FILES["tvm"])
    x = subnet.x.numpy()
    runner = TvmLibraryRunner(folder / FILES["tvm"], x, threads=threads)  # reloaded from disk
    result = verified("TVM (reloaded model.so)", subnet.reference, runner.run(x))
    tuned = selection.chosen == "metaschedule-db"
    return {"schedule": ("MetaSchedule records that make this subnet faster, default schedule for the other tasks"
                         if tuned else "untuned (kernels.tvm.build.default_schedule)"),
            "tvm_schedule": selection.chosen, "tuning": tuning_provenance(tuning, selection, summary),
            "target": str(target), "batch": int(subnet.x.shape[0]), "runtime": "relax.VirtualMachine",
            "parity": {**result, "against": "the extracted subnet (torch)", "reloaded": True}}, runner


def tuning_provenance(tuning: TvmTuning, selection, summary) -> dict:
    """The report's ``tuning`` of a TVM build: the database, its hits, the minutes tuned first and, when some
    task had a record, the selection with both whole-network timings (``kernels.tvm.select``)."""
    stats = selection.stats
    provenance = {"db": str(tuning.db) if tuning.db is not None else None, "tasks_hit": stats.tasks_hit,
                  "tasks_total": stats.tasks_total, "flops_coverage": round(stats.flops_coverage, 4),
                  "minutes_tuned": round(summary.elapsed_s / 60.0, 3) if summary is not None else 0.0,
                  "trials": summary.trials if summary is not None else 0}
    if selection.candidates:
        provenance["selection"] = selection.to_dict()  # both whole-network timings when both were built
    return provenance


def _compile_tvm(subnet: Subnet, folder: Path, target, tuning: TvmTuning, threads: int, log: Callable[[str], None]):
    """``(kernels.tvm.select.Selection, tune summary or None)``: the static-shape ONNX model in Relax through
    :func:`tune_and_select`."""
    from kernels.onnx_export import export_onnx as write_onnx
    from kernels.tvm import build as tvm_build

    with tempfile.TemporaryDirectory(prefix="tvm-", dir=folder) as work:
        onnx_path = write_onnx(subnet.module, subnet.x, Path(work) / "static.onnx", opset=OPSET)  # TVM: static shapes
        return tune_and_select(tvm_build.import_onnx(onnx_path), target, tuning, x=subnet.x.numpy(), threads=threads,
                               log=log)


def tune_and_select(mod, target, tuning: TvmTuning, *, x: np.ndarray, threads: int, log: Callable[[str], None],
                    what: str = "TVM", on_tune_error: Callable[[Exception], None] | None = None):
    """``(kernels.tvm.select.Selection, tune summary or None)`` of the Relax module ``mod``: its tasks tuned into
    ``tuning.db`` for ``tuning.minutes`` first (when > 0), then built with the database's records that make the
    whole network faster (``kernels.tvm.select.compile_never_slower``); ``what`` names the build in the log.
    A ``KernelError`` of the tuning (another process tuning that database, a database file that breaks its
    schema) propagates, unless ``on_tune_error`` is given: it hears the error and the build goes on from the
    database as it is."""
    from kernels.errors import KernelError
    from kernels.tvm import db as tvm_db
    from kernels.tvm.schedule import legalize
    from kernels.tvm.select import compile_never_slower

    db_dir, summary = tuning.db, None
    if tuning.minutes > 0:
        from kernels.tvm.tune import tune

        if db_dir is None:
            raise ValueError("tuning.minutes > 0 needs a database folder (tuning.db), got None")
        tasks = tvm_db.merge_tasks(tvm_db.extract_tasks(legalize(mod, target), target))
        log(f"tuning {len(tasks)} {what} tasks for {tuning.minutes:g} min into {db_dir}")
        try:
            summary = tune(tasks, target, db_dir, budget_s=tuning.minutes * 60.0)
        except KernelError as err:
            if on_tune_error is None:
                raise
            on_tune_error(err)
    database = None
    if db_dir is not None and (db_dir / tvm_db.RECORD_FILE).exists():
        database = tvm_db.open_database(db_dir, create=False)
    return compile_never_slower(mod, target, database, x=x, threads=threads, log=log), summary

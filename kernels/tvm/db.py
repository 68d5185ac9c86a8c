"""MetaSchedule tuning databases and tasks (Apache TVM 0.27, ``tvm.s_tir.meta_schedule``).

Contract:
- A tuning database is a folder holding MetaSchedule's two JSON-lines files
  (``database_workload.json``, ``database_tuning_record.json``). TVM appends one line per workload
  and per measured candidate (C++ ``std::ofstream`` append, so Ctrl-C, which Python only sees
  between bytecodes, cannot split a line); a process killed mid-write can still leave a partial
  last line, and TVM's reader then fails on the whole file. :func:`open_database` therefore checks
  every line first (:func:`check_database`, :mod:`kernels.tvm._db_check`): a workload line is
  ``[structural hash (decimal string), module (base64 string)]``, a record line ``[workload index,
  [trace (list), run_secs (null or a list of finite seconds > 0), target (object with "kind"),
  args_info (list)]]`` whose index names an earlier workload line, and ``default_schedule_times.json``
  is ``{"<task key>": seconds > 0}``.
  The one repair is the cut-off write: a last line without its newline that does not parse, after
  at least one good line, is cut off (the bytes before it stay), and a good last line without its
  newline gets one (TVM's next append would run into it); the file is replaced atomically, its mode
  kept. Any other bad
  line is a :class:`TuningDatabaseError` (a ``KernelError`` and ``ValueError``) naming the file, the
  line and what a valid line looks like, and nothing is written: a file the reader does not
  understand is never rewritten or emptied.
- Tasks are the fused TIR PrimFuncs of a Relax module legalised by
  ``kernels.tvm.schedule.legalize`` (the same passes an untuned build runs), so a task of a
  standalone layer module and of a whole network match when their PrimFuncs are structurally
  equal. :func:`extract_tasks` returns :class:`Task` (name, module, weight = calls, FLOPs per call,
  ``key`` = structural hash); :func:`merge_tasks` dedupes by key, summing weights.
- :func:`hit_stats` says which tasks have a valid (measured, finite) record: tasks total, tasks
  with a record, share of FLOPs covered. :func:`compile_relax` applies the records
  (``MetaScheduleApplyDatabase`` under ``with target, database``) and schedules every task without
  one by the default rules (``kernels.tvm.schedule``), so a partly tuned build is never left
  unscheduled; given a :class:`Legalized` (:func:`legalize_tasks`: the legalised module and its
  tasks) it starts from that, so several builds of one network legalise it once.
  :func:`compile_onnx_tuned` does import + compile for an ONNX file.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from kernels.errors import KernelError
from kernels.tvm._common import _tvm
from kernels.tvm._db_check import (DEFAULT_TIMES_FILE, DEFAULT_TIMES_SHAPE, MAX_DEFAULT_TIMES_BYTES,  # noqa: F401
                                   RECORD_FILE, RECORD_SHAPE, WORKLOAD_FILE, WORKLOAD_SHAPE, TuningDatabaseError,
                                   check_database, is_seconds, load_default_times)

_FOREIGN_INTRINSICS = ("cuda", "rocm", "hexagon", "arm_cpu", "metal", "riscv_cpu")


def light_tensor_intrinsics() -> None:
    """Import ``tvm.s_tir.tensor_intrin`` with the foreign-target modules (CUDA, ROCm, Hexagon,
    ARM, Metal, RISC-V) stubbed out: importing them costs 20-100 s here and x86 float32 tuning
    uses none of them (DESIGN.md). Call it before MetaSchedule imports the package (TuneContext,
    builder workers). A process that already imported the package keeps it as it is."""
    import sys
    import types

    _tvm()
    base = "tvm.s_tir.tensor_intrin"
    if base not in sys.modules:
        for name in _FOREIGN_INTRINSICS:
            sys.modules.setdefault(f"{base}.{name}", types.ModuleType(f"{base}.{name}"))
    import tvm.s_tir.tensor_intrin  # noqa: F401


@dataclass(frozen=True)
class Task:
    """One tuning task: a fused PrimFunc (``mod``, an IRModule with ``main``), how often the network
    calls it (``weight``), its FLOPs per call and its structural hash (``key``)."""

    name: str
    mod: object
    weight: float
    flops: float
    key: int

    @property
    def total_flops(self) -> float:
        return self.weight * self.flops


@dataclass(frozen=True)
class HitStats:
    """How much of a module a database covers: tasks with a valid record and their FLOPs share."""

    tasks_total: int
    tasks_hit: int
    flops_total: float
    flops_hit: float

    @property
    def hit_rate(self) -> float:
        return self.tasks_hit / self.tasks_total if self.tasks_total else 1.0

    @property
    def flops_coverage(self) -> float:
        return self.flops_hit / self.flops_total if self.flops_total else 1.0

    def to_dict(self) -> dict:
        return {"tasks_total": self.tasks_total, "tasks_hit": self.tasks_hit, "hit_rate": self.hit_rate,
                "flops_coverage": self.flops_coverage}


def extract_tasks(mod, target) -> list[Task]:
    """The tuning tasks of a legalised Relax module (``kernels.tvm.schedule.legalize``)."""
    _tvm()
    import tvm_ffi
    from tvm.s_tir.analysis import estimate_tir_flops
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks as ms_extract

    try:
        extracted = ms_extract(mod, target)
        tasks = []
        for t in extracted:
            task_mod = t.dispatched[0]
            try:
                flops = float(estimate_tir_flops(task_mod))
            except Exception:  # noqa: BLE001 - e.g. a data-dependent loop: count it as free
                flops = 0.0
            tasks.append(Task(str(t.task_name), task_mod, float(t.weight), flops,
                              int(tvm_ffi.structural_hash(task_mod))))
        return tasks
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM task extraction failed: {type(err).__name__}: {err}") from err


def merge_tasks(*task_lists) -> list[Task]:
    """The distinct tasks of several lists (by structural hash, weights summed), most FLOPs first."""
    merged: dict[int, Task] = {}
    for tasks in task_lists:
        for t in tasks:
            old = merged.get(t.key)
            merged[t.key] = t if old is None else Task(old.name, old.mod, old.weight + t.weight, old.flops, old.key)
    return sorted(merged.values(), key=lambda t: -t.total_flops)


def _write_atomic(path: Path, lines: list[str] | bytes) -> None:
    """Replace ``path`` by ``lines`` (or these bytes) atomically (temporary file + rename), keeping its mode."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    data = lines if isinstance(lines, bytes) else "".join(line + "\n" for line in lines).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def repair_database(folder) -> int:
    """Check the database in ``folder`` (:func:`check_database`: ``TuningDatabaseError`` for a bad line, nothing
    written), cut off a last line cut mid-write and end a good last line with its newline; returns how many
    lines were dropped. A file is only rewritten (atomically, its mode kept) for these two repairs."""
    folder = Path(folder)
    dropped = 0
    for fix, name in zip(check_database(folder), (WORKLOAD_FILE, RECORD_FILE)):
        data = (folder / name).read_bytes() if fix else b""
        if fix == "cut":  # every byte up to the last newline stays as it was
            _write_atomic(folder / name, data[:data.rfind(b"\n") + 1])
            dropped += 1
        elif fix == "newline":
            _write_atomic(folder / name, data + b"\n")
    return dropped


def open_database(folder, *, create: bool = True):
    """The ``JSONDatabase`` in ``folder`` (repaired first, see the module docstring)."""
    _tvm()
    from tvm.s_tir.meta_schedule.database import JSONDatabase

    folder = Path(folder)
    if not folder.is_dir():
        if not create:
            raise KernelError(f"TVM tuning database {str(folder)!r} does not exist")
        folder.mkdir(parents=True, exist_ok=True)
    repair_database(folder)
    try:
        return JSONDatabase(str(folder / WORKLOAD_FILE), str(folder / RECORD_FILE), allow_missing=True,
                            module_equality="structural")
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM tuning database {str(folder)!r} cannot be read: {type(err).__name__}: "
                          f"{(str(err).strip().splitlines() or [''])[0][:200]}") from err


def save_default_times(folder, times: dict[str, float]) -> None:
    """Merge ``times`` (those that are finite seconds > 0) into the folder's default-schedule times (atomic
    rewrite); a file that does not follow the schema is refused (``TuningDatabaseError``), never overwritten."""
    merged = {**load_default_times(folder), **{str(k): float(v) for k, v in times.items() if is_seconds(v)}}
    _write_atomic(Path(folder) / DEFAULT_TIMES_FILE, [json.dumps(merged, sort_keys=True)])


def best_record(database, task: Task, target):
    """The fastest valid record of ``task`` in ``database``, or None."""
    if not database.has_workload(task.mod):
        return None
    return database.query_tuning_record(task.mod, target, "main")


def useful_records(tasks: list[Task], database, target, default_times: dict[str, float], only=None) -> dict:
    """Task key -> the best record of each task that beats its default schedule in the tuning runner (a task
    whose default time is unknown keeps its record); ``only`` (task keys) limits it to those tasks. The
    runner's verdict is mostly noise (``nas.export.tuning``): builds pass ``{}`` and let
    ``kernels.tvm.select`` time the records inside the network."""
    useful = {}
    for task in tasks:
        if only is not None and task.key not in only:
            continue
        record = best_record(database, task, target)
        if record is None or not record.run_secs:
            continue
        seconds = sum(float(v) for v in record.run_secs) / len(record.run_secs)
        default = default_times.get(str(task.key))
        if default is None or seconds < default:
            useful[task.key] = record
    return useful


def _useful_records(tasks: list[Task], database, target, default_times: dict[str, float], only=None):
    """:func:`useful_records` as a MemoryDatabase (what ``MetaScheduleApplyDatabase`` reads), and how many."""
    from tvm.s_tir.meta_schedule.database import MemoryDatabase, TuningRecord

    memory = MemoryDatabase()
    records = useful_records(tasks, database, target, default_times, only)
    for record in records.values():
        memory.commit_tuning_record(TuningRecord(record.trace, memory.commit_workload(record.workload.mod), record.run_secs,
                                                 record.target, record.args_info))
    return memory, len(records)


def has_record(database, task: Task, target) -> bool:
    """Whether ``database`` holds a valid (successfully measured) record for ``task``."""
    if not database.has_workload(task.mod):
        return False
    return database.query_tuning_record(task.mod, target, "main") is not None


def hit_stats(tasks: list[Task], database, target) -> HitStats:
    """Which of ``tasks`` ``database`` covers (see :class:`HitStats`)."""
    hits = [t for t in tasks if has_record(database, t, target)]
    return HitStats(len(tasks), len(hits), sum(t.total_flops for t in tasks), sum(t.total_flops for t in hits))


@dataclass(frozen=True)
class Legalized:
    """A Relax module legalised for a target (:func:`legalize_tasks`) and its merged tuning tasks: what
    :func:`compile_relax` starts from, so several builds of one network legalise it once."""

    mod: object
    tasks: tuple


def legalize_tasks(mod, target) -> Legalized:
    """``mod`` legalised for ``target`` and its tuning tasks (extracted, merged)."""
    from kernels.tvm.schedule import legalize

    legalized = legalize(mod, target)
    return Legalized(legalized, tuple(merge_tasks(extract_tasks(legalized, target))))


class Compiled(NamedTuple):
    """A build of :func:`compile_relax`: the VM executable, which tasks had records, and the scheduled
    module that was built (e.g. for ``kernels.tvm.pointwise.vnni_functions``)."""

    executable: object
    stats: HitStats
    scheduled: object


def compile_relax(mod, target, database=None, *, only=None) -> Compiled:
    """Legalise ``mod`` (or take a :class:`Legalized` as it is), apply ``database``'s records (with
    ``only``, a set of task keys, just those tasks' records: ``kernels.tvm.select`` decides per subnet
    which make the whole network faster), schedule the rest by the default rules and build. Returns a
    :class:`Compiled`; without a database every task is default-scheduled."""
    tvm = _tvm()
    from tvm import relax

    from kernels.tvm.schedule import build_scheduled

    prepared = mod if isinstance(mod, Legalized) else legalize_tasks(mod, target)
    mod, tasks = prepared.mod, prepared.tasks  # build_scheduled schedules a copy: prepared stays as it is
    if database is None:
        stats = HitStats(len(tasks), 0, sum(t.total_flops for t in tasks), 0.0)
    else:
        stats = hit_stats(tasks, database, target)
        if stats.tasks_hit:
            light_tensor_intrinsics()
            useful, _ = _useful_records(tasks, database, target, {}, only)
            try:
                with target, useful, tvm.transform.PassContext(opt_level=3):
                    mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
            except Exception as err:  # noqa: BLE001
                raise KernelError(f"TVM build failed: applying the tuning database: {type(err).__name__}: "
                                  f"{err}") from err
    executable, scheduled = build_scheduled(mod, target)
    return Compiled(executable, stats, scheduled)


def compile_onnx_tuned(path, target, database=None, *, input_shape=None, only=None) -> Compiled:
    """:func:`compile_relax` of the ONNX model at ``path`` (static shape): a :class:`Compiled`."""
    from kernels.tvm.build import import_onnx

    return compile_relax(import_onnx(path, input_shape=input_shape), target, database, only=only)

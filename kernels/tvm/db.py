"""MetaSchedule tuning databases and tasks (Apache TVM 0.27, ``tvm.s_tir.meta_schedule``).

Contract:
- A tuning database is a folder holding MetaSchedule's two JSON-lines files
  (``database_workload.json``, ``database_tuning_record.json``). TVM appends one line per workload
  and per measured candidate (C++ ``std::ofstream`` append, so Ctrl-C, which Python only sees
  between bytecodes, cannot split a line); a process killed mid-write can still leave a partial
  last line, and TVM's reader then fails on the whole file. :func:`open_database` therefore checks
  every line first (:func:`check_database`): a workload line is ``[structural hash (decimal string),
  module (base64 string)]``, a record line ``[workload index, [trace (list), run_secs (null or a
  list of finite seconds > 0), target (object with "kind"), args_info (list)]]`` whose index names an
  earlier workload line, and ``default_schedule_times.json`` is ``{"<task key>": seconds > 0}``.
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
  unscheduled. :func:`compile_onnx_tuned` does import + compile for an ONNX file.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kernels.errors import KernelError
from kernels.tvm._common import _tvm

WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
DEFAULT_TIMES_FILE = "default_schedule_times.json"  # {task key: seconds of the default schedule}
_FOREIGN_INTRINSICS = ("cuda", "rocm", "hexagon", "arm_cpu", "metal", "riscv_cpu")
WORKLOAD_SHAPE = '["<structural hash, decimal string>", "<module, base64 string>"]'
RECORD_SHAPE = ('[<workload index: int, 0-based line of database_workload.json>, [<trace: list>, '
                '<run_secs: null or list of finite seconds > 0>, <target: object with "kind">, <args_info: list>]]')
DEFAULT_TIMES_SHAPE = '{"<task key, decimal string>": <seconds, finite > 0>, ...}'
MAX_DEFAULT_TIMES_BYTES = 16 << 20  # one small JSON object: a few dozen bytes per task


class TuningDatabaseError(KernelError, ValueError):
    """A tuning database file does not follow its schema (module docstring); the message names the file,
    the line and what a valid line looks like. Nothing was written."""


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


def _refuse(path: Path, where: str, problem: str, shape: str) -> TuningDatabaseError:
    """The one-line refusal of a bad database file; ``shape`` is what a valid line (or file) looks like."""
    expected = f"the file must be {shape}" if path.name == DEFAULT_TIMES_FILE else f"each line must be {shape}"
    return TuningDatabaseError(f"TVM tuning database file {str(path)!r} {where}: {problem}; {expected}; nothing was "
                               "changed (fix or delete the file)")


def _is_seconds(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and value > 0)


def _workload_problem(item) -> str | None:
    """Why a parsed workload line breaks the schema (:data:`WORKLOAD_SHAPE`), or None."""
    if not isinstance(item, list) or len(item) != 2:
        return f"expected a 2-item list, got {_kind(item)}"
    shash, mod = item
    if not ((isinstance(shash, str) and shash.isdigit() and shash.isascii())
            or (isinstance(shash, int) and not isinstance(shash, bool) and shash >= 0)):
        return f"the structural hash must be a decimal string, got {shash!r:.60}"
    if not isinstance(mod, str) or not mod:
        return f"the module must be a non-empty base64 string, got {_kind(mod)}"
    return None


def _record_problem(item, n_workloads: int) -> str | None:
    """Why a parsed record line breaks the schema (:data:`RECORD_SHAPE`), or None."""
    if not isinstance(item, list) or len(item) != 2:
        return f"expected a 2-item list, got {_kind(item)}"
    index, record = item
    if isinstance(index, bool) or not isinstance(index, int):
        return f"the workload index must be an integer, got {index!r:.60}"
    if not 0 <= index < n_workloads:
        return (f"workload index {index} is not a line of the workload file (0..{n_workloads - 1})" if n_workloads
                else f"workload index {index} but the workload file has no workloads")
    if not isinstance(record, list) or len(record) != 4:
        return f"the record must be a 4-item list [trace, run_secs, target, args_info], got {_kind(record)}"
    trace, run_secs, target, args_info = record
    if not isinstance(trace, list):
        return f"the trace must be a list, got {_kind(trace)}"
    if run_secs is not None:
        if not isinstance(run_secs, list):
            return f"run_secs must be null or a list of seconds, got {_kind(run_secs)}"
        bad = [v for v in run_secs if not _is_seconds(v)]
        if bad:
            return f"run_secs must be finite seconds > 0, got {bad[0]!r:.40}"
    if not isinstance(target, dict) or not isinstance(target.get("kind"), str):
        return f'the target must be an object with a "kind" string, got {_kind(target)}'
    if not isinstance(args_info, list):
        return f"args_info must be a list, got {_kind(args_info)}"
    return None


def _kind(value) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "null" if value is None else type(value).__name__


def _checked_lines(path: Path, problem_of, shape: str) -> tuple[int, str | None]:
    """``(good lines, repair)`` of a JSON-lines file whose every line follows the schema (``problem_of(item)`` says
    why one does not); ``repair`` is ``"cut"`` when a last line without its newline did not parse (a write cut off
    mid-line, after at least one good line: it is not counted), ``"newline"`` when a good last line lacks its
    newline (TVM's next append would run into it), else None. Otherwise ``TuningDatabaseError`` naming the line."""
    if not path.exists():
        return 0, None
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise TuningDatabaseError(f"TVM tuning database file {str(path)!r} cannot be read: "
                                  f"{err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise _refuse(path, f"byte {err.start}", "not UTF-8 text", shape) from None
    raw = text.split("\n")
    unterminated = raw[-1].strip() != ""  # no final newline: the last line may have been cut mid-write
    good = 0
    for number, line in enumerate(raw, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError) as err:
            if unterminated and number == len(raw) and good:
                return good, "cut"
            reason = f"not JSON ({err.msg})" if isinstance(err, json.JSONDecodeError) else f"not JSON ({err})"
            raise _refuse(path, f"line {number}", reason[:200], shape) from None
        problem = problem_of(item)
        if problem is not None:
            raise _refuse(path, f"line {number}", problem, shape)
        good += 1
    return good, "newline" if unterminated else None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def check_database(folder) -> tuple[str | None, str | None]:
    """Check every line of the database in ``folder`` (module docstring); ``TuningDatabaseError`` for the first
    bad one. Returns the repair the workload and the record file need (None, ``"cut"``: a last line cut off
    mid-write, ``"newline"``: a good last line without its newline), which :func:`repair_database` makes.
    Reads only; TVM is not imported."""
    folder = Path(folder)
    workloads, fix_w = _checked_lines(folder / WORKLOAD_FILE, _workload_problem, WORKLOAD_SHAPE)
    _, fix_r = _checked_lines(folder / RECORD_FILE, lambda item: _record_problem(item, workloads), RECORD_SHAPE)
    load_default_times(folder)
    return fix_w, fix_r


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


def load_default_times(folder) -> dict[str, float]:
    """``{str(task.key): seconds}`` of each task's default schedule as measured while tuning ({} without the
    file); ``TuningDatabaseError`` naming the file and key unless it is :data:`DEFAULT_TIMES_SHAPE`."""
    path = Path(folder) / DEFAULT_TIMES_FILE
    if not path.exists():
        return {}
    try:
        if path.stat().st_size > MAX_DEFAULT_TIMES_BYTES:
            raise _refuse(path, "as a whole", f"{path.stat().st_size} bytes, more than a times file can hold "
                          f"({MAX_DEFAULT_TIMES_BYTES})", DEFAULT_TIMES_SHAPE)
        data = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except OSError as err:
        raise TuningDatabaseError(f"TVM tuning database file {str(path)!r} cannot be read: "
                                  f"{err.strerror or err}") from None
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError, JSONDecodeError, a NaN
        reason = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
        raise _refuse(path, "as a whole", f"not a JSON object ({reason[:120]})", DEFAULT_TIMES_SHAPE) from None
    if not isinstance(data, dict):
        raise _refuse(path, "as a whole", f"not a JSON object but {_kind(data)}", DEFAULT_TIMES_SHAPE)
    for key, value in data.items():
        if not (key.isdigit() and key.isascii()):
            raise _refuse(path, f"key {key!r:.60}", "a task key must be a decimal string", DEFAULT_TIMES_SHAPE)
        if not _is_seconds(value):
            raise _refuse(path, f"key {key!r}", f"seconds must be a finite number > 0, got {value!r:.40}",
                          DEFAULT_TIMES_SHAPE)
    return {key: float(value) for key, value in data.items()}


def save_default_times(folder, times: dict[str, float]) -> None:
    """Merge ``times`` (those that are finite seconds > 0) into the folder's default-schedule times (atomic
    rewrite); a file that does not follow the schema is refused (``TuningDatabaseError``), never overwritten."""
    merged = {**load_default_times(folder), **{str(k): float(v) for k, v in times.items() if _is_seconds(v)}}
    _write_atomic(Path(folder) / DEFAULT_TIMES_FILE, [json.dumps(merged, sort_keys=True)])


def best_record(database, task: Task, target):
    """The fastest valid record of ``task`` in ``database``, or None."""
    if not database.has_workload(task.mod):
        return None
    return database.query_tuning_record(task.mod, target, "main")


def _useful_records(tasks: list[Task], database, target, default_times: dict[str, float]):
    """A MemoryDatabase with the best record of each task that beats its default schedule (a task
    whose default time is unknown keeps its record)."""
    from tvm.s_tir.meta_schedule.database import MemoryDatabase, TuningRecord

    memory = MemoryDatabase()
    used = 0
    for task in tasks:
        record = best_record(database, task, target)
        if record is None or not record.run_secs:
            continue
        seconds = sum(float(v) for v in record.run_secs) / len(record.run_secs)
        default = default_times.get(str(task.key))
        if default is not None and default <= seconds:
            continue
        memory.commit_tuning_record(TuningRecord(record.trace, memory.commit_workload(record.workload.mod), record.run_secs,
                                                 record.target, record.args_info))
        used += 1
    return memory, used


def has_record(database, task: Task, target) -> bool:
    """Whether ``database`` holds a valid (successfully measured) record for ``task``."""
    if not database.has_workload(task.mod):
        return False
    return database.query_tuning_record(task.mod, target, "main") is not None


def hit_stats(tasks: list[Task], database, target) -> HitStats:
    """Which of ``tasks`` ``database`` covers (see :class:`HitStats`)."""
    hits = [t for t in tasks if has_record(database, t, target)]
    return HitStats(len(tasks), len(hits), sum(t.total_flops for t in tasks), sum(t.total_flops for t in hits))


def compile_relax(mod, target, database=None, *, default_times: dict[str, float] | None = None):
    """Legalise ``mod``, apply ``database``'s records, schedule the rest by the default rules and
    build. Returns ``(executable, HitStats)``; without a database every task is default-scheduled.
    A record slower than the task's measured default schedule (``default_times``, see
    :func:`load_default_times`) is not applied: a partly tuned build is never slower per task."""
    tvm = _tvm()
    from tvm import relax

    from kernels.tvm.build import build
    from kernels.tvm.schedule import legalize, schedule_legalized

    mod = legalize(mod, target)
    tasks = merge_tasks(extract_tasks(mod, target))
    if database is None:
        stats = HitStats(len(tasks), 0, sum(t.total_flops for t in tasks), 0.0)
    else:
        stats = hit_stats(tasks, database, target)
        if stats.tasks_hit:
            light_tensor_intrinsics()
            useful, _ = _useful_records(tasks, database, target, default_times or {})
            try:
                with target, useful, tvm.transform.PassContext(opt_level=3):
                    mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
            except Exception as err:  # noqa: BLE001
                raise KernelError(f"TVM build failed: applying the tuning database: {type(err).__name__}: "
                                  f"{err}") from err
    mod = schedule_legalized(mod, target)
    return build(mod, target), stats


def compile_onnx_tuned(path, target, database=None, *, input_shape=None, default_times=None):
    """:func:`compile_relax` of the ONNX model at ``path`` (static shape): ``(executable, HitStats)``."""
    from kernels.tvm.build import import_onnx

    return compile_relax(import_onnx(path, input_shape=input_shape), target, database, default_times=default_times)

"""The schema check of a MetaSchedule tuning database (:mod:`kernels.tvm.db`, whose docstring states the
contract): :func:`check_database` reads every line of ``database_workload.json`` and
``database_tuning_record.json`` and says which repair a cut-off last write needs, :func:`load_default_times`
reads ``default_schedule_times.json``; a line or key that breaks the schema is a :class:`TuningDatabaseError`
naming the file, the line and what a valid one looks like. Reads only; TVM is not imported. (``kernels`` imports
no other room, so its finite-number and JSON-constant checks are its own copy of ``search_spaces._checks``.)"""

from __future__ import annotations

import json
import math
from pathlib import Path

from kernels.errors import KernelError

WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
DEFAULT_TIMES_FILE = "default_schedule_times.json"  # {task key: seconds of the default schedule}
WORKLOAD_SHAPE = '["<structural hash, decimal string>", "<module, base64 string>"]'
RECORD_SHAPE = ('[<workload index: int, 0-based line of database_workload.json>, [<trace: list>, '
                '<run_secs: null or list of finite seconds > 0>, <target: object with "kind">, <args_info: list>]]')
DEFAULT_TIMES_SHAPE = '{"<task key, decimal string>": <seconds, finite > 0>, ...}'
MAX_DEFAULT_TIMES_BYTES = 16 << 20  # one small JSON object: a few dozen bytes per task


class TuningDatabaseError(KernelError, ValueError):
    """A tuning database file does not follow its schema (module docstring); the message names the file,
    the line and what a valid line looks like. Nothing was written."""


def _refuse(path: Path, where: str, problem: str, shape: str) -> TuningDatabaseError:
    """The one-line refusal of a bad database file; ``shape`` is what a valid line (or file) looks like."""
    expected = f"the file must be {shape}" if path.name == DEFAULT_TIMES_FILE else f"each line must be {shape}"
    return TuningDatabaseError(f"TVM tuning database file {str(path)!r} {where}: {problem}; {expected}; nothing was "
                               "changed (fix or delete the file)")


def is_seconds(value) -> bool:
    """Whether ``value`` is an ``int`` or ``float`` (bool excluded) that is a finite float > 0; an int too large for
    a float is not (and no ``OverflowError``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:  # an int beyond the float range
        return False


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
        bad = [v for v in run_secs if not is_seconds(v)]
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
    """``json.loads``' ``parse_constant``: NaN, Infinity and -Infinity are refused."""
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
        if not is_seconds(value):
            raise _refuse(path, f"key {key!r}", f"seconds must be a finite number > 0, got {value!r:.40}",
                          DEFAULT_TIMES_SHAPE)
    return {key: float(value) for key, value in data.items()}

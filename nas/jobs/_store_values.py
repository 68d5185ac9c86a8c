"""What the job store checks before it writes, and how read-only commands open a SQLite store.

Contract: a value reaches the store only when it is a finite number (:func:`finite_only` splits off
the others and names them); reports are stored with non-finite floats as null (:func:`finite_json`,
since NaN is not JSON); :func:`existing_store_url` refuses a path that is not an existing job store
(listing or reading a job never creates a file, and ``Job`` refuses writes through it);
:func:`readable_trials` reads a damaged store row by row, skipping what Optuna cannot load.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from urllib.parse import quote
from typing import Mapping

from hw_profiles import Metric


def is_finite(value) -> bool:
    """Whether ``value`` is a real number (numpy scalars included, bool excluded) and finite."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _non_finite_figures(name: str, metric: Metric) -> list[str]:
    """A description of each non-finite figure of ``metric``: its value, spread, interval bounds, coverage."""
    figures = {"": metric.value, " spread": metric.spread, " coverage": metric.coverage}
    if metric.interval is not None:
        figures.update({" interval lo": metric.interval[0], " interval hi": metric.interval[1]})
    return [f"metric {name}{label} = {v!r}" for label, v in figures.items()
            if (v is not None or not label) and not is_finite(v)]


def finite_only(metrics: Mapping[str, Metric], constraints: Mapping[str, float]):
    """``(metrics, constraints, bad)``: those with finite values, and a description of the others (a
    metric with a non-finite spread, interval bound or coverage counts as non-finite)."""
    bad_by_metric = {k: _non_finite_figures(k, m) for k, m in metrics.items()}
    bad = [text for texts in bad_by_metric.values() for text in texts]
    bad += [f"constraint {k} = {v!r}" for k, v in constraints.items() if not is_finite(v)]
    kept = {k: m for k, m in metrics.items() if not bad_by_metric[k]}
    return kept, {k: float(v) for k, v in constraints.items() if is_finite(v)}, bad


def finite_json(obj):
    """``obj`` (JSON-able) with every non-finite float replaced by None: what reports store, since
    NaN is not JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj



_SQLITE_MAGIC = b"SQLite format 3\x00"


def existing_store_url(storage: str, error: type[Exception]) -> str:
    """``storage`` once it names an existing job store (other URLs unchanged); ``error`` naming the
    file when it is missing, not a SQLite database or not a job store, so nothing is ever created.

    The store is then opened with a normal connection, and hwnas' own writes are refused by
    ``Job`` (its ``read_only`` flag). SQLite's ``mode=ro`` is not used on purpose: a read-only
    connection cannot roll back the journal of a writer killed mid-transaction, and while another
    process commits it can mistake that writer's journal for such a one and fail ("attempt to write a
    readonly database"), so ``nas pareto`` beside a running search would fail at random."""
    if not storage.startswith("sqlite:///") or storage == "sqlite:///:memory:":
        return storage
    path = Path(storage[len("sqlite:///"):].split("?", 1)[0])
    if not path.is_file():
        raise error(f"no job store at {str(path)!r} (storage {storage!r}); give the --storage URL of an "
                    "existing store, e.g. the one `nas search` wrote")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(_SQLITE_MAGIC))
    except OSError as err:
        raise error(f"cannot read job store {str(path)!r}: {err.strerror or err}") from None
    if magic != _SQLITE_MAGIC:
        raise error(f"{str(path)!r} is not a job store (not a SQLite database); give the --storage URL "
                    "of a store `nas search` wrote")
    import sqlite3

    try:  # mode=rw: never creates the file (it exists; a race that removes it gives an error, not a new file)
        with sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=rw", uri=True, timeout=30) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as err:
        raise error(f"{str(path)!r} is not a readable job store: {err}") from None
    if not {"studies", "trials", "study_user_attributes"} <= tables:
        raise error(f"{str(path)!r} is a SQLite database but not a job store (no Optuna tables); give "
                    "the --storage URL of a store `nas search` wrote")
    return storage


def readable_trials(storage, study_id: int, states) -> tuple[list, int]:
    """``(trials, skipped)``: the trials of a study in an RDB ``storage`` (Optuna's ``FrozenTrial``, in
    ``states`` or all) read one by one, skipping those Optuna fails to load (a damaged row)."""
    from sqlalchemy import text

    backend = getattr(storage, "_backend", storage)
    with backend.engine.connect() as conn:
        rows = conn.execute(text("SELECT trial_id FROM trials WHERE study_id = :sid ORDER BY trial_id"),
                            {"sid": study_id}).all()
    readable, skipped = [], 0
    for (trial_id,) in rows:
        try:
            trial = backend.get_trial(trial_id)
        except (AssertionError, ValueError, TypeError, KeyError):
            skipped += 1
            continue
        if states is None or trial.state in states:
            readable.append(trial)
    return readable, skipped


def finite_predictions(blob) -> dict[str, tuple[float, float]]:
    """``{objective: (mean, var)}`` of a trial's ``predicted`` attribute (``{objective: {"mean", "var"}}``);
    entries that are not a finite mean with a finite variance > 0 are left out (written or read, a
    damaged or forged row never breaks the record)."""
    out: dict[str, tuple[float, float]] = {}
    for name, pred in (blob.items() if isinstance(blob, Mapping) else ()):
        try:
            if isinstance(pred["mean"], bool) or isinstance(pred["var"], bool):
                continue
            mean, var = float(pred["mean"]), float(pred["var"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(mean) and math.isfinite(var) and var > 0:
            out[str(name)] = (mean, var)
    return out

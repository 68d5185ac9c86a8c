"""Whole-network record selection: a tuning record goes into a build only if the network gets faster with it.

Why (measured, see ``nas.export.tuning``'s docstring for the figures): MetaSchedule's runner times each
task alone, three times in a row on the same buffers, so its weights and inputs are warm in the caches;
inside the network each task runs once per inference and reads weights that the other tasks evicted. A
record that beat the default schedule in the runner can lose inside the network, most of all on tasks that
stream large weights (the classifier, the last 1x1 convolutions).

Contract of :func:`compile_never_slower` (``x``: the network's input as float32 numpy, ``threads``: TVM threads):
1. The candidates are the tasks with a valid record (their best one), whatever the runner said of it
   against the default schedule: the runner's two single measurements, taken minutes apart, swing by up
   to 2.5x on this host. Without any, the default build is returned (``chosen == "default"``, nothing timed).
2. The default build and the build with every candidate take turns, ``rounds`` times each; in each turn
   one untimed inference warms the build's weights into the caches (as a deployed model running
   back-to-back has them) and the next has each task's calls timed inside the running network (the VM's
   instrument hook: :func:`task_times_in_network`; the hook adds a few microseconds to every call of both
   builds alike). A candidate is kept when its task's median time per inference is below the default
   schedule's by more than ``margin`` (``KEEP_MARGIN``; :func:`keep_records`).
3. The build with the kept records and the default build are timed whole, interleaved, one warm call
   before each timed one (:func:`kernels.timing.measure`, ``ab_repeats`` samples each); the tuned build is
   chosen only when its median is below the default's by more than ``AB_MARGIN`` (a tie goes to the
   default). So a ``metaschedule-db`` build is never slower than ``default`` beyond the noise of that A/B,
   and :class:`Selection` carries both timings. The choice depends on timings: two exports of the same
   subnet can pick differently when the two builds are within the noise of each other.
Without a database the default build is returned. Failures are ``KernelError`` naming the step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from kernels.errors import KernelError
from kernels.timing import Timing, check_protocol, measure

KEEP_MARGIN = 0.02  # a record must make its task this much faster inside the network to be kept
AB_MARGIN = 0.01  # the tuned build must beat the default build's whole-network median by this much
ROUNDS = 20  # whole-network runs of each build for the per-task times
AB_REPEATS = 40  # whole-network samples of each build in the final A/B
WARMUP = 5


@dataclass(frozen=True)
class Selection:
    """What :func:`compile_never_slower` built and why: ``chosen`` is ``"metaschedule-db"`` or ``"default"``;
    ``candidates`` tasks had a record, ``kept`` of them were faster inside the network; ``tuned`` and
    ``default`` are the whole-network timings of the A/B (None when no A/B ran: no candidate, or none
    kept); ``rejected`` lists the candidates dropped, with their in-network microseconds;
    ``default_executable`` is the default build (``executable`` itself when the default was chosen) and
    ``scheduled`` the scheduled module of the chosen build (``kernels.tvm.db.Compiled.scheduled``)."""

    executable: object
    stats: object  # kernels.tvm.db.HitStats
    chosen: str
    candidates: int
    kept: int
    tuned: Timing | None = None
    default: Timing | None = None
    rejected: list = field(default_factory=list)
    default_executable: object = None
    scheduled: object = None

    def to_dict(self) -> dict:
        """JSON-ready: the decision, both whole-network timings (ms, median and IQR) and the rejected records."""
        def ms(t: Timing | None):
            return None if t is None else {"median": round(t.median_ms, 4), "iqr": round(t.iqr_ms, 4),
                                           "repeats": t.repeats}

        return {"chosen": self.chosen, "records_candidate": self.candidates, "records_kept": self.kept,
                "tuned_ms": ms(self.tuned), "default_ms": ms(self.default),
                "ratio_tuned_over_default": (round(self.tuned.median_s / self.default.median_s, 4)
                                             if self.tuned is not None and self.default is not None else None),
                "rejected_in_network": self.rejected,
                "rule": f"records kept where their task is >{KEEP_MARGIN:.0%} faster inside the network; the tuned "
                        f"build is used only when its whole-network median is >{AB_MARGIN:.0%} below the default "
                        "build's"}


def keys_by_symbol(legalized) -> dict[str, int]:
    """PrimFunc name -> task key (``kernels.tvm.db.Task.key``) for every PrimFunc of a legalised module."""
    import tvm
    import tvm_ffi
    from tvm import tirx

    return {gvar.name_hint: int(tvm_ffi.structural_hash(tvm.IRModule({"main": func.with_attr("global_symbol", "main")})))
            for gvar, func in legalized.functions_items() if isinstance(func, tirx.PrimFunc)}


def task_times_in_network(models: dict, x: np.ndarray, symbols: dict[str, int], *, rounds: int,
                          warmup: int = WARMUP) -> dict[str, dict[int, float]]:
    """Per model name: task key -> median seconds per inference that the task's calls took inside the
    running network. The models (``kernels.tvm.build.TvmModel``) take turns, one inference each per round;
    each turn is an untimed inference then a timed one, every VM call of which the instrument hook times
    (a few microseconds each, the same in every model)."""
    samples: dict[str, list[dict[int, float]]] = {name: [] for name in models}
    tensors = {name: model.tensor(x) for name, model in models.items()}
    current: dict[int, float] = {}
    started = [0]

    def instrument(func, symbol, before, ret, *args) -> int:
        if before:
            started[0] = time.perf_counter_ns()
        elif symbol in symbols:
            key = symbols[symbol]
            current[key] = current.get(key, 0.0) + (time.perf_counter_ns() - started[0]) * 1e-9
        return 0  # VMInstrumentReturnKind.NO_OP

    def no_op(func, symbol, before, ret, *args) -> int:
        return 0

    try:
        for i in range(warmup + rounds):
            for name, model in models.items():
                model.vm.set_instrument(no_op)  # the same hook cost, untimed: the warm call of this turn
                model.invoke(tensors[name])
                model.vm.set_instrument(instrument)
                current.clear()
                model.invoke(tensors[name])
                if i >= warmup:
                    samples[name].append(dict(current))
    except KernelError:
        raise
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM select failed: timing tasks inside the network: {type(err).__name__}: {err}") from err
    finally:
        for model in models.values():
            _attempt_clear(model)
    return {name: {key: float(np.median([s.get(key, 0.0) for s in runs])) for key in set().union(*runs)}
            for name, runs in samples.items()}


def _attempt_clear(model) -> None:
    try:
        model.vm.set_instrument(None)
    except Exception:  # noqa: BLE001 - best effort: the model is not used with a hook afterwards
        pass


def keep_records(candidates, tuned: dict[int, float], default: dict[int, float], margin: float = KEEP_MARGIN) -> set:
    """The candidate task keys whose in-network time with the record is below ``(1 - margin)`` × the
    default schedule's; a task missing from either timing is not kept."""
    return {key for key in candidates
            if key in tuned and key in default and tuned[key] < (1.0 - margin) * default[key]}


def compile_never_slower(mod, target, database, *, x: np.ndarray, threads: int, rounds: int = ROUNDS,
                         ab_repeats: int = AB_REPEATS, margin: float = KEEP_MARGIN,
                         log: Callable[[str], None] | None = None) -> Selection:
    """The build of ``mod`` with only the records that make the whole network faster (module docstring);
    ``database`` None: the default build."""
    from kernels.tvm.db import compile_relax

    check_protocol(warmup=WARMUP, repeats=rounds, threads=threads)
    check_protocol(warmup=WARMUP, repeats=ab_repeats, threads=threads)
    if not -100.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [-100, 1), got {margin!r}")
    log = log or (lambda msg: None)
    if database is None:
        built = compile_relax(mod, target, None)
        return Selection(built.executable, built.stats, "default", 0, 0, default_executable=built.executable,
                         scheduled=built.scheduled)
    try:
        return _select(mod, target, database, x, threads, rounds, ab_repeats, margin, log)
    except KernelError:
        raise
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM select failed: {type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:300]}") from err


def _select(mod, target, database, x, threads: int, rounds: int, ab_repeats: int, margin: float, log) -> Selection:
    from kernels.tvm.build import TvmModel
    from kernels.tvm.db import compile_relax, hit_stats, legalize_tasks, useful_records

    legalized = legalize_tasks(mod, target)  # once: each build below starts from it
    tasks = legalized.tasks
    stats = hit_stats(tasks, database, target)
    candidates = set(useful_records(tasks, database, target, {}))
    default = compile_relax(legalized, target, None)
    default_exe = default.executable
    if not candidates:
        return Selection(default_exe, stats, "default", 0, 0, default_executable=default_exe,
                         scheduled=default.scheduled)
    symbols = keys_by_symbol(legalized.mod)
    if candidates - set(symbols.values()):
        raise KernelError(f"TVM select failed: {len(candidates - set(symbols.values()))} tuned tasks have no function "
                          "in the built network (task keys and PrimFunc names disagree)")
    tuned = compile_relax(legalized, target, database, only=candidates)
    tuned_exe = tuned.executable
    models = {"tuned": TvmModel(tuned_exe, threads=threads), "default": TvmModel(default_exe, threads=threads)}
    times = task_times_in_network(models, x, symbols, rounds=rounds)
    kept = keep_records(candidates, times["tuned"], times["default"], margin)
    names = {t.key: t.name for t in tasks}
    rejected = sorted(({"task": names[k], "record_us": round(times["tuned"].get(k, 0.0) * 1e6, 1),
                        "default_us": round(times["default"].get(k, 0.0) * 1e6, 1)} for k in candidates - kept),
                      key=lambda r: -r["record_us"])
    log(f"{len(kept)}/{len(candidates)} tuning records are faster inside the network")
    if not kept:
        return Selection(default_exe, stats, "default", len(candidates), 0, rejected=rejected,
                         default_executable=default_exe, scheduled=default.scheduled)
    if kept != candidates:
        tuned = compile_relax(legalized, target, database, only=kept)
        tuned_exe = tuned.executable
        models["tuned"] = TvmModel(tuned_exe, threads=threads)
    tensors = {name: model.tensor(x) for name, model in models.items()}
    timing = measure({name: (lambda m=model, t=tensors[name]: m.invoke(t)) for name, model in models.items()},
                     warmup=WARMUP, repeats=ab_repeats, threads=threads, warm_calls=1)
    faster = timing["tuned"].median_s < (1.0 - AB_MARGIN) * timing["default"].median_s
    log(f"whole network: tuned {timing['tuned'].median_ms:.3f} ms, default {timing['default'].median_ms:.3f} ms "
        f"-> {'tuned' if faster else 'default'}")
    return Selection(tuned_exe if faster else default_exe, stats, "metaschedule-db" if faster else "default",
                     len(candidates), len(kept), timing["tuned"], timing["default"], rejected, default_exe,
                     (tuned if faster else default).scheduled)

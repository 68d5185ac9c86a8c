"""MetaSchedule tuning of many tasks under a wall-clock budget into a persistent database (TVM 0.27).

Contract of :func:`tune`:
- ``tasks`` (``kernels.tvm.db.Task``, e.g. the merged tasks of many modules) are tuned for
  ``target`` into the database folder ``db_dir`` (created when missing) until ``budget_s`` seconds
  have passed, every task reached ``max_trials_per_task`` or the search has nothing new to try.
- First each task's default schedule (``kernels.tvm.schedule``) is built and timed once with the
  same builder and runner, into ``db_dir``'s default-times file (``kernels.tvm.db``): compiles
  apply a record only where it beats that time, so a partly tuned model is never slower per task.
- Coverage first: while some task has no valid record, rounds of ``COVERAGE_TRIALS`` candidates
  (random cost model) go to such tasks, most FLOPs first; one that failed ``MAX_EMPTY_ROUNDS``
  rounds is left to the default schedule. Then rounds of ``trials_per_round`` (XGBoost cost model)
  go to the tasks that cost the most time in a compiled model (weight × min(record, default), damped
  by how many rounds each already had); ``max_trials_per_task`` <= ``COVERAGE_TRIALS`` stops after
  coverage. Tasks that already have records count as covered, and the evolutionary search starts
  from their best records.
- Settings that work on a 2-core machine (DESIGN.md): one persistent builder pool whose workers
  import TVM's tensor intrinsics once with the foreign-target modules stubbed out, a small
  population, ``trials_per_round`` candidates per round, and a scheduler that stops at the budget.
- Every measured candidate is appended to the database as soon as its round is measured, so
  Ctrl-C (``KeyboardInterrupt``, also one raised by ``on_progress``) keeps every earlier round's
  records; the pools are shut down and the interrupt propagates. Only one process may tune a
  database at a time (an ``flock`` on ``db_dir/.tune.lock``; a second one gets ``KernelError``).
- ``on_progress(TuneProgress)`` is called after every measured round.
- The run's bookkeeping (which task next, what each measured round changed) is one
  :class:`kernels.tvm._tune_state.TuneState`, shared by the task scheduler, the builder and the
  measure callback that TVM calls back into.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from kernels.errors import KernelError
from kernels.tvm._common import _tvm
from kernels.tvm._tune_state import MAX_EMPTY_ROUNDS, TuneProgress, TuneState  # noqa: F401 - re-exported
from kernels.tvm.db import (Task, has_record, light_tensor_intrinsics, load_default_times, open_database,
                            save_default_times)

COVERAGE_TRIALS = 2  # candidates per round while some task has no record yet
POPULATION = 64  # evolutionary search population (TVM's default 512 is far too slow here)
_LOG = logging.getLogger("kernels.tvm.tune")
PHASE_S = {"build": 0.0}  # seconds spent building candidates in this process (for diagnostics)


@dataclass(frozen=True)
class TuneSummary:
    """What :func:`tune` did: time, rounds, trials, coverage before and after."""

    elapsed_s: float
    rounds: int
    trials: int
    valid_trials: int
    tasks_total: int
    tasks_covered_before: int
    tasks_covered: int
    stopped: str  # "budget", "done" (nothing left to try)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _builder_worker_init() -> None:
    """Runs once in each builder worker: TVM's tensor intrinsics without the foreign targets."""
    light_tensor_intrinsics()


def _runner_worker_init(threads: int) -> Callable[[], None]:
    def init() -> None:  # the runner times with the target's thread count (TVM's default: half the cores)
        os.environ["TVM_NUM_THREADS"] = str(threads)
        os.environ.setdefault("TVM_BIND_THREADS", "0")
    return init


def _make_builder(workers: int, timeout_s: float, state: TuneState):
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
    from tvm.ir.utils import derived_object
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    @derived_object
    class PersistentBuilder(PyBuilder):
        """LocalBuilder's build, but one worker pool for the whole run (workers stay warm)."""

        def __init__(self) -> None:
            super().__init__()
            self.pool = PopenPoolExecutor(max_workers=workers, timeout=timeout_s, initializer=_builder_worker_init)

        def build(self, build_inputs):
            return state.guarded(self._build)(build_inputs)

        def _build(self, build_inputs):
            t0 = time.monotonic()
            results = []
            jobs = [(None, None, b.mod, b.target, _serialize_params(b.params)) for b in build_inputs]
            for res in self.pool.map_with_error_catching(lambda x: _worker_func(*x), jobs):
                if res.status == StatusKind.COMPLETE:
                    results.append(BuilderResult(res.value, None))
                else:
                    results.append(BuilderResult(None, f"PersistentBuilder: {res.status}: {res.value}"))
            PHASE_S["build"] += time.monotonic() - t0
            return results

    return PersistentBuilder()


def _make_scheduler(state: TuneState, ids: Sequence[int], coverage_only: bool):
    from tvm.s_tir.meta_schedule.task_scheduler import PyTaskScheduler
    from tvm.ir.utils import derived_object

    @derived_object
    class BudgetScheduler(PyTaskScheduler):
        """Coverage first, then the tasks that cost the most (``TuneState.next_task``); -1 once done or
        the budget is spent."""

        def next_task_id(self) -> int:
            return state.guarded(self._next)()

        def _next(self) -> int:
            outer = self._outer()
            for i in range(len(ids)):
                outer.touch_task(i)
            if state.out_of_time():
                return -1
            live = [i for i, rec in enumerate(outer.tasks_) if not rec.is_terminated]
            task_id = state.next_task(live, ids, coverage_only)
            if task_id is None:
                return -1
            if outer.tasks_[task_id].runner_futures is not None:
                self.join_running_task(task_id)
            return task_id

    return BudgetScheduler()


def _make_callback(state: TuneState, ids: Sequence[int], on_progress):
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback
    from tvm.ir.utils import derived_object

    @derived_object
    class Progress(PyMeasureCallback):
        """Counts valid candidates per task and reports progress (after AddToDatabase committed)."""

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
            state.guarded(self._apply)(task_id, runner_results)

        def _apply(self, local_id, runner_results) -> None:
            progress = state.record(ids[local_id], runner_results)
            if on_progress is not None:
                on_progress(progress)

    return Progress()


def _measure_defaults(tasks: Sequence[Task], target, builder, runner, db_dir: Path) -> None:
    """Time each task's default schedule (``kernels.tvm.schedule``) with the tuning builder and runner
    once, into ``db_dir``'s default-times file: compiles apply only records that beat it."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.builder import BuilderInput
    from tvm.s_tir.meta_schedule.runner import RunnerInput

    from kernels.tvm.schedule import schedule_legalized

    known = load_default_times(db_dir)
    todo = [t for t in tasks if str(t.key) not in known]
    if not todo:
        return
    from tvm import IRModule

    mods = [schedule_legalized(IRModule({"main": t.mod["main"]}), target) for t in todo]  # a copy: tasks stay unscheduled
    built = builder.build([BuilderInput(m, target) for m in mods])
    times = {}
    for task, mod, result in zip(todo, mods, built):
        if result.error_msg is not None:
            continue
        args = ArgInfo.from_entry_func(mod, remove_preproc=True)
        run = runner.run([RunnerInput(result.artifact_path, "cpu", args)])[0].result()
        shutil.rmtree(os.path.dirname(result.artifact_path), ignore_errors=True)
        if run.error_msg is None and run.run_secs:
            times[str(task.key)] = sum(float(v) for v in run.run_secs) / len(run.run_secs)
    save_default_times(db_dir, times)


class _Lock:
    """An exclusive, non-blocking ``flock`` on ``folder/.tune.lock``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".tune.lock"
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise KernelError(f"TVM tuning database {str(folder)!r} is being tuned by another process") from None

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


@dataclass(frozen=True)
class _Phase:
    """One ``ms.tune_tasks`` call: the tasks it may pick (indices), candidates per round, coverage only."""

    ids: list
    per_round: int
    coverage_only: bool


def tune(tasks: Sequence[Task], target, db_dir, *, budget_s: float, trials_per_round: int = 8,
         max_trials_per_task: int = 1000, builders: int | None = None, seed: int = 0,
         on_progress: Callable[[TuneProgress], None] | None = None) -> TuneSummary:
    """Tune ``tasks`` into the database in ``db_dir`` for at most ``budget_s`` seconds (module docstring)."""
    if not tasks:
        raise KernelError("TVM tuning failed: no tasks to tune")
    if not budget_s > 0:
        raise KernelError(f"TVM tuning failed: the budget must be > 0 seconds, got {budget_s}")
    _tvm()
    from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, LocalRunner

    start = time.monotonic()
    db_dir = Path(db_dir)
    if db_dir.is_dir():
        from kernels.tvm.db import check_database

        check_database(db_dir)  # a file it cannot parse is refused before anything is written there
    db_dir.mkdir(parents=True, exist_ok=True)
    lock = _Lock(db_dir)
    builder = runner = state = None
    try:
        light_tensor_intrinsics()
        database = open_database(db_dir)
        threads = int(target.attrs.get("num-cores", 0) or 0) or (os.cpu_count() or 1)
        recorded = [has_record(database, t, target) for t in tasks]
        state = TuneState.begin(tasks, recorded, start=start, budget_s=budget_s)
        _LOG.setLevel(logging.WARNING)
        builder = _make_builder(builders or max(1, os.cpu_count() or 1), timeout_s=60.0, state=state)
        runner = LocalRunner(timeout_sec=60.0, initializer=_runner_worker_init(threads),
                             evaluator_config=EvaluatorConfig(number=3, repeat=1, min_repeat_ms=40))
        state.default = _default_times(tasks, target, builder, runner, db_dir)
        for phase in _phases(state, trials_per_round, max_trials_per_task):
            if state.out_of_time():
                break
            _run_phase(phase, state, target, database, builder, runner, db_dir, threads=threads, seed=seed,
                       max_trials_per_task=max_trials_per_task, on_progress=on_progress)
        database = open_database(db_dir)
        covered = sum(has_record(database, t, target) for t in tasks)
        return TuneSummary(elapsed_s=time.monotonic() - start, rounds=sum(state.rounds), trials=state.trials,
                           valid_trials=state.valid, tasks_total=len(tasks), tasks_covered_before=sum(recorded),
                           tasks_covered=covered, stopped=state.stopped)
    except KernelError:
        raise
    except Exception as err:  # noqa: BLE001 - KeyboardInterrupt is not an Exception: it propagates
        if state is not None and state.interrupted:
            raise KeyboardInterrupt from err
        raise KernelError(f"TVM tuning failed: {type(err).__name__}: "
                          f"{(str(err).strip().splitlines() or [''])[0][:300]}") from err
    finally:
        _shut_down(builder, runner)
        lock.release()


def _default_times(tasks: Sequence[Task], target, builder, runner, db_dir: Path) -> dict[int, float]:
    """Task index -> its default schedule's seconds (measured now when missing from ``db_dir``)."""
    try:
        _measure_defaults(tasks, target, builder, runner, db_dir)
    except Exception as err:  # noqa: BLE001 - without default times every record is applied, as before
        _LOG.warning("default schedule times not measured: %s", err)
    defaults = load_default_times(db_dir)
    return {i: defaults[str(t.key)] for i, t in enumerate(tasks) if str(t.key) in defaults}


def _phases(state: TuneState, trials_per_round: int, max_trials_per_task: int) -> list[_Phase]:
    """Coverage (the tasks without a record, ``COVERAGE_TRIALS`` a round) then every task, unless
    ``max_trials_per_task`` stops after coverage."""
    uncovered = [i for i, b in enumerate(state.best) if b is None]
    phases = [_Phase(uncovered, min(COVERAGE_TRIALS, trials_per_round), True)] if uncovered else []
    if max_trials_per_task > COVERAGE_TRIALS or not uncovered:
        phases.append(_Phase(list(range(len(state.tasks))), trials_per_round, False))
    return phases


def _run_phase(phase: _Phase, state: TuneState, target, database, builder, runner, db_dir: Path, *, threads: int,
               seed: int, max_trials_per_task: int, on_progress) -> None:
    """One ``ms.tune_tasks`` over the phase's tasks (evolutionary search seeded from their records)."""
    from tvm.s_tir import meta_schedule as ms

    tasks = state.tasks
    contexts = [ms.TuneContext(
        mod=tasks[i].mod, target=target, space_generator="post-order-apply",
        search_strategy=ms.search_strategy.EvolutionarySearch(
            population_size=POPULATION, init_min_unmeasured=min(POPULATION, 16), genetic_num_iters=2,
            init_measured_ratio=0.2, max_fail_count=3),
        task_name=tasks[i].name, rand_state=seed + i, num_threads=threads, logger=_LOG).clone() for i in phase.ids]
    cost_model = ms.cost_model.RandomModel()  # coverage: too few samples for a model to help
    if not phase.coverage_only:
        try:  # retrained after every round: early stopping keeps that cheap
            cost_model = ms.cost_model.XGBModel(num_tuning_cores=threads, early_stopping_rounds=10, verbose_eval=10**6)
        except Exception:  # noqa: BLE001 - xgboost missing: random still finds valid schedules
            pass
    callbacks = [*ms.measure_callback.MeasureCallback.create("default"), _make_callback(state, phase.ids, on_progress)]
    ms.tune_tasks(tasks=contexts, task_weights=[tasks[i].weight for i in phase.ids], work_dir=str(db_dir),
                  max_trials_global=10**9, max_trials_per_task=max_trials_per_task,
                  num_trials_per_iter=phase.per_round, builder=builder, runner=runner, database=database,
                  cost_model=cost_model, measure_callbacks=callbacks,
                  task_scheduler=_make_scheduler(state, phase.ids, phase.coverage_only))


def _shut_down(builder, runner) -> None:
    """Stop the builder's and the runner's worker pools (best effort)."""
    for pool_owner in (getattr(builder, "_inst", None), runner):
        pool = getattr(pool_owner, "pool", None)
        if pool is not None:
            try:
                pool.shutdown()
            except Exception:  # noqa: BLE001
                pass

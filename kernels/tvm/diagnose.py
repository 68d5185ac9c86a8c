"""Diagnostics of MetaSchedule's tuning runner (for ``experiments/benchmarks/tvm_in_network.py``).

:func:`runner_times` re-times tasks' default schedules and best records with the same ``LocalRunner``
settings tuning uses (3 calls, 40 ms minimum, the target's threads), with or without MetaSchedule's
``enable_cpu_cache_flush``: what the runner would say now, to compare with what it said while tuning
and with the task's time inside the running network (``kernels.tvm.select.task_times_in_network``).
"""

from __future__ import annotations

import numpy as np

from kernels.tvm._common import _tvm


def runner_times(tasks, records: dict, target, threads: int, flush: bool) -> dict:
    """(task key, "default"|"record") -> mean seconds from MetaSchedule's LocalRunner (as tuning times them);
    ``records`` maps task keys to their best record. A build or run that fails is left out."""
    _tvm()
    from tvm import IRModule, s_tir
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.builder import BuilderInput, LocalBuilder
    from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, LocalRunner, RunnerInput

    from kernels.tvm.schedule import schedule_legalized
    from kernels.tvm.tune import _runner_worker_init

    mods = {}
    for task in tasks:
        mods[(task.key, "default")] = schedule_legalized(IRModule({"main": task.mod["main"]}), target)
        if task.key in records:
            sch = s_tir.Schedule(task.mod)
            records[task.key].trace.apply_to_schedule(sch, remove_postproc=False)
            mods[(task.key, "record")] = sch.mod
    keys = list(mods)
    built = LocalBuilder().build([BuilderInput(mods[k], target) for k in keys])
    runner = LocalRunner(timeout_sec=60.0, initializer=_runner_worker_init(threads),
                         evaluator_config=EvaluatorConfig(number=3, repeat=1, min_repeat_ms=40,
                                                          enable_cpu_cache_flush=flush))
    out = {}
    for key, result in zip(keys, built):
        if result.error_msg is None:
            run = runner.run([RunnerInput(result.artifact_path, "cpu", ArgInfo.from_entry_func(mods[key]))])[0].result()
            if run.error_msg is None:
                out[key] = float(np.mean([float(v) for v in run.run_secs]))
    return out

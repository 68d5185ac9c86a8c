"""The bookkeeping of one :func:`kernels.tvm.tune.tune` run, shared by its task scheduler, builder and
measure callback (no TVM imports): which task to tune next, what each measured round changed, and
where the run stands (:class:`TuneProgress`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from kernels.tvm.db import Task

MAX_EMPTY_ROUNDS = 3  # rounds without one valid candidate before a task is left to the default schedule


@dataclass(frozen=True)
class TuneProgress:
    """Where a :func:`kernels.tvm.tune.tune` run stands after a measured round."""

    elapsed_s: float
    budget_s: float
    rounds: int
    trials: int
    valid_trials: int
    tasks_total: int
    tasks_covered: int
    last_task: str


@dataclass
class TuneState:
    """What one :func:`kernels.tvm.tune.tune` run's scheduler, builder and measure callback share, mutated as rounds are
    measured. Per task (index into ``tasks``): ``best`` measured seconds (a FLOPs-scaled stand-in for a
    task recorded before this run, None while it has no valid record), ``rounds`` measured, ``empty``
    rounds without a valid candidate, and the ``default`` schedule's seconds where known."""

    tasks: Sequence[Task]
    start: float
    budget_s: float
    best: list
    rounds: list
    empty: list
    default: dict = field(default_factory=dict)
    trials: int = 0
    valid: int = 0
    stopped: str = "done"  # or "budget"
    interrupted: bool = False

    @classmethod
    def begin(cls, tasks: Sequence[Task], recorded: Sequence[bool], *, start: float, budget_s: float) -> "TuneState":
        # a recorded task's real best time is unknown here; use its FLOPs as the time share until measured
        scale = max((t.flops for t in tasks), default=1.0) or 1.0
        return cls(tasks=tasks, start=start, budget_s=float(budget_s), rounds=[0] * len(tasks), empty=[0] * len(tasks),
                   best=[(t.flops / scale * 1e-3) if r else None for t, r in zip(tasks, recorded)])

    def out_of_time(self) -> bool:
        """Whether the budget is spent (then ``stopped`` says so)."""
        if time.monotonic() >= self.start + self.budget_s:
            self.stopped = "budget"
            return True
        return False

    def guarded(self, fn: Callable) -> Callable:
        """``fn`` that notes a ``KeyboardInterrupt`` before it crosses TVM's C++ (tvm-ffi turns it into a
        plain RuntimeError on the way back), so :func:`kernels.tvm.tune.tune` can re-raise it as what it was."""
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                self.interrupted = True
                raise
        return call

    def next_task(self, live: Sequence[int], ids: Sequence[int], coverage_only: bool) -> int | None:
        """The local index (into ``ids``) to tune next among ``live``: an uncovered task first (fewest empty
        rounds, most FLOPs), else the one that costs the most time in a compiled model; None: done."""
        uncovered = [i for i in live if self.best[ids[i]] is None and self.empty[ids[i]] < MAX_EMPTY_ROUNDS]
        if not live or (coverage_only and not uncovered):
            self.stopped = "done"
            return None
        if uncovered:
            return min(uncovered, key=lambda i: (self.empty[ids[i]], -self.tasks[ids[i]].total_flops))
        return max(live, key=lambda i: self._cost(ids[i]))

    def _cost(self, task_id: int) -> float:
        """The task's time in a compiled model, min(record, default schedule) × weight, damped by its rounds."""
        best, default = self.best[task_id], self.default.get(task_id)
        seconds = min(x for x in (best, default, math.inf) if x is not None)
        time_share = self.tasks[task_id].weight * (seconds if seconds < math.inf else 0.0)
        return time_share / math.sqrt(1 + self.rounds[task_id])

    def record(self, task_id: int, runner_results) -> TuneProgress:
        """Count one measured round of ``task_id``; returns where the run stands."""
        valid = [float(sum(r.run_secs) / len(r.run_secs)) for r in runner_results
                 if r.error_msg is None and r.run_secs and all(float(s) < 1e9 for s in r.run_secs)]
        self.rounds[task_id] += 1
        self.trials += len(runner_results)
        self.valid += len(valid)
        if valid:
            old = self.best[task_id]
            self.best[task_id] = min(valid) if old is None else min(old, min(valid))
        else:
            self.empty[task_id] += 1
        return TuneProgress(elapsed_s=time.monotonic() - self.start, budget_s=self.budget_s, rounds=sum(self.rounds),
                            trials=self.trials, valid_trials=self.valid, tasks_total=len(self.tasks),
                            tasks_covered=sum(b is not None for b in self.best), last_task=self.tasks[task_id].name)

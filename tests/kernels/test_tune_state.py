"""The bookkeeping of a tuning run (``kernels.tvm._tune_state``): no TVM needed."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from kernels.tvm._tune_state import MAX_EMPTY_ROUNDS, TuneState


@dataclass(frozen=True)
class _Task:  # the fields of kernels.tvm.db.Task that the state reads
    name: str
    flops: float
    total_flops: float
    weight: int


@dataclass(frozen=True)
class _Result:  # a MetaSchedule RunnerResult
    run_secs: list
    error_msg: str | None = None


TASKS = [_Task("a", 10.0, 10.0, 1), _Task("b", 40.0, 80.0, 2), _Task("c", 5.0, 5.0, 1)]


def _state(recorded=(False, False, True), budget_s=60.0) -> TuneState:
    return TuneState.begin(TASKS, list(recorded), start=time.monotonic(), budget_s=budget_s)


def test_recorded_tasks_start_covered_with_a_flops_stand_in():
    state = _state()
    assert state.best[:2] == [None, None] and state.best[2] == pytest.approx(5.0 / 40.0 * 1e-3)
    assert state.rounds == [0, 0, 0] and state.trials == 0 and state.stopped == "done"


def test_coverage_first_most_flops_first_then_the_costliest():
    state = _state()
    ids = [0, 1, 2]
    assert state.next_task([0, 1, 2], ids, coverage_only=False) == 1  # uncovered, most FLOPs
    progress = state.record(1, [_Result([0.002, 0.004]), _Result([1e10], None), _Result([0.1], "failed")])
    assert state.best[1] == pytest.approx(0.003) and state.trials == 3 and state.valid == 1
    assert progress.tasks_covered == 2 and progress.last_task == "b" and progress.rounds == 1
    assert state.next_task([0, 1, 2], ids, coverage_only=False) == 0  # the last uncovered one
    for _ in range(MAX_EMPTY_ROUNDS):
        state.record(0, [_Result([], "failed")])
    assert state.empty[0] == MAX_EMPTY_ROUNDS and state.best[0] is None
    assert state.next_task([0, 1, 2], ids, coverage_only=True) is None and state.stopped == "done"
    state.default = {2: 1.0}  # a slow default schedule: task c costs the most in a compiled model
    state.best[2] = None
    state.empty[2] = MAX_EMPTY_ROUNDS
    assert state.next_task([0, 1, 2], ids, coverage_only=False) == 2


def test_local_ids_map_to_tasks_and_the_budget_stops():
    state = _state(recorded=(True, True, False))
    assert state.next_task([0, 1], [2, 0], coverage_only=True) == 0  # local 0 is task c, uncovered
    assert not state.out_of_time() and state.stopped == "done"
    spent = _state(budget_s=1e-9)
    time.sleep(0.01)
    assert spent.out_of_time() and spent.stopped == "budget"


def test_an_interrupt_is_noted_before_it_crosses_tvm():
    state = _state()

    def stop():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        state.guarded(stop)()
    assert state.interrupted

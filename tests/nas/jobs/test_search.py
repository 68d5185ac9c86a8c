"""nas.search on a user space: budget, cheap-before-expensive, store contents, resume, load_job."""

from __future__ import annotations

import numpy as np
import pytest

from nas.jobs.objectives import Constraint, Objective, ObjectiveError
from nas.jobs.results import load_job
from nas.jobs.search import search
from nas.searchers import pareto_mask
from nas.jobs.store import StoreError

import search_toy
from search_toy import SPACE


def test_search_in_memory_respects_budget_and_returns_a_true_front(monkeypatch):
    calls = []
    monkeypatch.setattr(search_toy, "quality", _counting(search_toy.quality, calls))
    result = search(SPACE, search_toy.objectives(), search_toy.constraints(), algorithm="nsga2", budget=40, seed=1,
                    progress=False)
    trials = result.trials()
    complete = trials[trials.state == "complete"]
    assert len(complete) == 40 == len(calls)  # the budget counts expensive evaluations, each arch once
    assert trials.arch_id.is_unique
    pruned = trials[trials.state == "pruned"]
    assert (pruned["size <= 12"] > 0).all() and not pruned.feasible.any()
    assert not set(pruned.arch_id) & set(calls)  # rejected archs never reached the expensive objective
    front = result.pareto()
    assert len(front) >= 2 and front.feasible.all()
    F = np.column_stack([-complete.quality, complete["size"]])
    G = complete[["size <= 12"]].to_numpy()
    expected = set(complete.arch_id[pareto_mask(F, G)])
    assert set(front.arch_id) == expected
    assert set(front.columns) >= {"arch_id", "a", "b", "c", "d", "quality", "size", "quality.source",
                                  "quality.profile", "size.spread", "feasible"}
    assert (front["quality.source"] == "measured").all() and (front["quality.profile"] == "user").all()


def _counting(fn, calls):
    def wrapped(arch):
        calls.append(arch.arch_id)
        return fn(arch)
    return wrapped


def test_same_seed_same_front_and_resume_continues_the_job(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    calls = []
    monkeypatch.setattr(search_toy, "quality", _counting(search_toy.quality, calls))
    first = search(SPACE, search_toy.objectives(), search_toy.constraints(), algorithm="nsga2", budget=15, seed=2,
                   storage=storage, job="j", progress=False)
    assert len(calls) == 15
    again = search(SPACE, search_toy.objectives(), search_toy.constraints(), algorithm="nsga2", budget=30, seed=2,
                   storage=storage, job="j", progress=False)
    assert len(calls) == 30 and len(set(calls)) == 30  # resumed: the first 15 were not evaluated again
    assert len(again.trials().query("state == 'complete'")) == 30
    loaded = load_job("j", storage=storage)
    assert loaded.pareto().arch_id.tolist() == again.pareto().arch_id.tolist()
    assert loaded.job.config["space"] == "toy"
    fresh = search(SPACE, search_toy.objectives(), search_toy.constraints(), algorithm="nsga2", budget=15, seed=2, progress=False)
    assert fresh.trials().arch_id.tolist()[:10] == first.trials().arch_id.tolist()[:10]


def test_resuming_with_other_objectives_is_refused(tmp_path):
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    search(SPACE, search_toy.objectives(), budget=4, seed=0, storage=storage, job="j", progress=False)
    with pytest.raises(StoreError, match="objectives"):
        search(SPACE, [Objective("size", search_toy.size)], budget=4, seed=0, storage=storage, job="j",
               progress=False)
    with pytest.raises(StoreError, match="no job 'nope'.*j"):
        load_job("nope", storage=storage)


def test_a_failing_objective_is_recorded_and_the_search_goes_on():
    def flaky(arch):
        if arch.to_dict()["c"] == "z":
            raise RuntimeError("simulated evaluation crash")
        return 1.0

    result = search(SPACE, [Objective("q", flaky), Objective("size", search_toy.size)], budget=20, seed=0,
                    progress=False)
    trials = result.trials()
    assert (trials.state == "fail").any() and (trials.state == "complete").any()
    failed = [r for r in result.job.records() if r.state == "fail"]
    assert "simulated evaluation crash" in failed[0].error
    assert len(trials[trials.state != "pruned"]) == 20


def test_bad_objectives_fail_before_anything_runs():
    with pytest.raises(ObjectiveError, match="direction"):
        Objective("x", "macs", direction="up")
    with pytest.raises(ObjectiveError, match="unknown metric"):
        search(SPACE, [Objective("x", "flops")], budget=2, progress=False)
    with pytest.raises(ObjectiveError, match="unique"):
        search(SPACE, [Objective("x", search_toy.size), Objective("x", search_toy.size)], budget=2, progress=False)
    with pytest.raises(ObjectiveError, match="op"):
        Constraint("macs", "<", 3)


def test_built_in_device_metrics_carry_provenance():
    from search_spaces import get_space

    space = get_space("tiny_mbv3")
    result = search(space, [Objective("macs", "macs"), Objective("sram", "stm32f746.peak_sram_kb"),
                            Objective("fpga", "zcu104.latency_ms")],
                    [Constraint("stm32f746.flash_kb", "<=", 1000)], budget=12, seed=0, progress=False)
    front = result.pareto()
    assert (front["sram.profile"] == "stm32f746@1").all() and (front["fpga.profile"] == "zcu104@2").all()
    assert (front["sram.source"] == "estimated").all() and (front["macs.profile"] == "analytic@1").all()
    assert "stm32f746.flash_kb <= 1000" in front.columns


def test_top_level_api_as_in_the_readme():
    import nas

    space = nas.SearchSpace("mine", [nas.Choice("op0", ["conv3x3", "skip", "none"]), nas.Choice("w", [8, 16, 32])])
    result = nas.search(space, objectives=[nas.Objective("acc", lambda a: a["w"] / (1 + (a["op0"] == "skip")),
                                                         direction="maximize"),
                                           nas.Objective("cost", lambda a: a["w"] / 4, cheap=True)],
                        constraints=[nas.Constraint("cost", "<=", 6)], budget=300, seed=0, progress=False)
    trials = result.trials()
    assert len(trials) == 9  # the space is exhausted long before the budget; every arch once
    assert set(trials[trials.state == "pruned"].w) == {32}
    assert set(result.pareto().w) == {8, 16} and "skip" not in set(result.pareto().op0)


def test_batch_objectives_receive_lists_of_archs():
    sizes = []

    def batch_quality(archs):
        sizes.append(len(archs))
        return [search_toy.quality(a) for a in archs]

    result = search(SPACE, [Objective("quality", batch_quality, direction="maximize", batch=True),
                            Objective("size", search_toy.size, cheap=True)], budget=12, seed=0, progress=False)
    assert len(result.trials().query("state == 'complete'")) == 12
    assert sizes and max(sizes) > 1  # queued candidates are evaluated as one list
    with pytest.raises(ObjectiveError, match="returned 1 values for"):
        search(SPACE, [Objective("q", lambda archs: [1.0], batch=True), Objective("size", search_toy.size)],
               budget=4, seed=0, batch_size=4, progress=False)


# ------------------------------------------------------------------------ records, waiting
def test_trial_records_carry_typed_metrics_and_old_stores_load(tmp_path):
    import optuna

    from hw_profiles import Metric
    from nas.jobs.records import TrialRecord
    from nas.jobs.store import Job, open_storage

    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    result = search(SPACE, search_toy.objectives(), search_toy.constraints(), budget=6, seed=0, storage=storage,
                    job="r", progress=False)
    records = result.records()
    assert records and all(isinstance(r, TrialRecord) for r in records)
    complete = [r for r in records if r.state == "complete"]
    assert all(isinstance(m, Metric) for r in complete for m in r.metrics.values())
    assert complete[0].metrics["quality"].source == "measured" and complete[0].metrics["quality"].profile == "user"
    frame = result.trials().set_index("arch_id")
    assert all(frame.loc[r.arch_id, "quality"] == r.value("quality") for r in complete)
    job = Job.load("r", storage=open_storage(storage))
    assert job.status == "done"
    # a trial exactly as stores written before TrialRecord existed hold it
    attrs = {"arch_id": "abc", "arch": {"a": 1, "b": 2, "c": "x", "d": 4},
             "result": {"metrics": {"size": {"value": 7.0, "unit": "", "source": "estimated", "profile": "user",
                                             "spread": None}},
                        "constraints": {"size <= 12": -5.0}, "feasible": False, "error": "boom"}}
    old = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=attrs)
    record = TrialRecord.from_trial(old)
    assert record.state == "fail" and record.error == "boom" and record.arch == attrs["arch"]
    assert record.metrics["size"] == Metric(value=7.0, unit="", source="estimated", profile="user")
    assert record.constraints == {"size <= 12": -5.0} and not record.feasible and not np.isnan(record.value("size"))
    assert np.isnan(record.value("quality"))


def test_waiting_for_workers_that_never_come_times_out_with_advice():
    from nas.jobs.search import WaitTimeoutError
    from search_spaces import NASError

    with pytest.raises(WaitTimeoutError, match=r"job 'lonely': \d+ of \d+ queued trial.*nas worker") as err:
        search(SPACE, search_toy.objectives(), search_toy.constraints(), budget=4, seed=0, job="lonely",
               evaluate_locally=False, wait_timeout_s=0.5, progress=False)
    assert isinstance(err.value, NASError) and isinstance(err.value, TimeoutError)
    with pytest.raises(ValueError, match="wait_timeout_s"):
        search(SPACE, search_toy.objectives(), budget=4, wait_timeout_s=0, progress=False)


def test_a_job_resumed_with_auto_keeps_the_searcher_it_was_created_with(tmp_path):
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    search(SPACE, search_toy.objectives(), search_toy.constraints(), algorithm="random", budget=6, seed=0,
           storage=storage, job="j", progress=False)
    again = search(SPACE, search_toy.objectives(), search_toy.constraints(), budget=10, seed=0, storage=storage,
                   job="j", progress=False)  # auto would pick linas for this expensive objective
    assert again.job.job_config.algorithm == "random" and again.job.predictor_report is None
    assert len(again.trials().query("state == 'complete'")) == 10

"""MetaSchedule tuning into a persistent database (kernels.tvm.db, kernels.tvm.tune), real TVM, tiny budgets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kernels.tvm import build as tvm_build, db as tvm_db, tune as tvm_tune
from kernels.errors import KernelError
from search_spaces import LayerSpec

pytestmark = [pytest.mark.tvm, pytest.mark.slow]

SPECS = [LayerSpec("pwconv", 8, 16, 1, 1, 1, (8, 8), "hswish", bn=True),
         LayerSpec("dwconv", 16, 16, 3, 1, 16, (8, 8), "relu", bn=True)]


@pytest.fixture(scope="module")
def model(tmp_path_factory, layers_model):
    """The SPECS layers as ONNX and Relax, their tasks, an input and the torch reference (conftest)."""
    return layers_model(SPECS, tmp_path_factory.mktemp("tune"))


@pytest.fixture(scope="module")
def tuned(model):
    """The model's tasks tuned into a fresh database until every task has a record."""
    db = model["work"] / "db"
    seen = []
    summary = tvm_tune.tune(model["tasks"], model["target"], db, budget_s=60, trials_per_round=2,
                            max_trials_per_task=2, on_progress=seen.append)
    return db, summary, seen


def test_tasks_are_deduped_and_ordered_by_flops(model):
    tasks = model["tasks"]
    assert len(tasks) >= 2
    assert len({t.key for t in tasks}) == len(tasks)
    assert [t.total_flops for t in tasks] == sorted((t.total_flops for t in tasks), reverse=True)
    assert tvm_db.merge_tasks(tasks, tasks)[0].weight == 2 * tasks[0].weight


def test_untuned_compile_has_no_hits_and_parity(model):
    executable, stats, _ = tvm_db.compile_onnx_tuned(model["path"], model["target"], None)
    assert stats.tasks_hit == 0 and stats.tasks_total == len(model["tasks"]) and stats.flops_coverage == 0.0
    out = tvm_build.TvmModel(executable, threads=2).run(model["x"])
    np.testing.assert_allclose(out, model["ref"], atol=1e-4 * max(1.0, np.abs(model["ref"]).max()))


def test_tuning_covers_every_task_and_persists(model, tuned):
    db, summary, seen = tuned
    assert summary.tasks_covered == summary.tasks_total == len(model["tasks"])
    assert summary.stopped == "done" and summary.valid_trials > 0 and seen
    assert summary.trials <= 2 * len(model["tasks"])  # max_trials_per_task=2: coverage only
    assert seen[-1].tasks_covered == len(model["tasks"])
    assert (db / tvm_db.RECORD_FILE).stat().st_size > 0
    database = tvm_db.open_database(db)  # a fresh reader of the files
    stats = tvm_db.hit_stats(model["tasks"], database, model["target"])
    assert stats.hit_rate == 1.0 and stats.flops_coverage == 1.0


def test_compile_from_database_hits_everything_with_parity(model, tuned):
    executable, stats, _ = tvm_db.compile_onnx_tuned(model["path"], model["target"], tvm_db.open_database(tuned[0]))
    assert stats.hit_rate == 1.0
    out = tvm_build.TvmModel(executable, threads=2).run(model["x"])
    assert np.abs(model["ref"]).max() > 0.1
    np.testing.assert_allclose(out, model["ref"], atol=1e-4 * max(1.0, np.abs(model["ref"]).max()))


def test_interrupt_keeps_committed_records_valid(model, tmp_path):
    db = tmp_path / "db"
    rounds = []

    def stop_after_one(progress):
        rounds.append(progress)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tvm_tune.tune(model["tasks"], model["target"], db, budget_s=60, trials_per_round=2, on_progress=stop_after_one)
    assert len(rounds) == 1
    lines = (db / tvm_db.RECORD_FILE).read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    stats = tvm_db.hit_stats(model["tasks"], tvm_db.open_database(db), model["target"])
    assert stats.tasks_hit == 1  # the interrupted round's task, most FLOPs first
    assert stats.flops_hit == model["tasks"][0].total_flops
    # the lock was released, and a second run starts from the records: the task counts as covered
    again = tvm_tune.tune(model["tasks"][:1], model["target"], db, budget_s=20, trials_per_round=2,
                          max_trials_per_task=2)
    assert again.tasks_covered_before == 1 and again.tasks_covered == 1


def test_default_schedule_times_are_measured_and_give_the_runners_verdict(model, tuned):
    db = tuned[0]
    times = tvm_db.load_default_times(db)
    assert set(times) == {str(t.key) for t in model["tasks"]} and all(v > 0 for v in times.values())
    database = tvm_db.open_database(db)
    _, used = tvm_db._useful_records(model["tasks"], database, model["target"], {})
    assert used == len(model["tasks"])  # no default time known: every record is applied
    never = {key: 0.0 for key in times}  # a default schedule faster than any record: none is applied
    _, used = tvm_db._useful_records(model["tasks"], database, model["target"], never)
    assert used == 0
    executable, stats, _ = tvm_db.compile_onnx_tuned(model["path"], model["target"], database, only=set())
    assert stats.hit_rate == 1.0  # hits count records, applied or not; the build still has parity
    out = tvm_build.TvmModel(executable, threads=2).run(model["x"])
    np.testing.assert_allclose(out, model["ref"], atol=1e-4 * max(1.0, np.abs(model["ref"]).max()))


def test_a_half_written_line_is_dropped_on_open(model, tuned, tmp_path):
    import shutil

    db = tmp_path / "db"
    shutil.copytree(tuned[0], db)
    good = (db / tvm_db.RECORD_FILE).read_text()
    with open(db / tvm_db.RECORD_FILE, "a", encoding="utf-8") as f:
        f.write(good.splitlines()[0][:40])  # a kill mid-write
    assert tvm_db.repair_database(db) >= 1
    assert (db / tvm_db.RECORD_FILE).read_text() == good
    stats = tvm_db.hit_stats(model["tasks"], tvm_db.open_database(db), model["target"])
    assert stats.hit_rate == 1.0


def test_bad_inputs(model, tmp_path):
    with pytest.raises(KernelError, match="budget"):
        tvm_tune.tune(model["tasks"], model["target"], tmp_path / "db", budget_s=0)
    with pytest.raises(KernelError, match="no tasks"):
        tvm_tune.tune([], model["target"], tmp_path / "db", budget_s=1)
    with pytest.raises(KernelError, match="does not exist"):
        tvm_db.open_database(tmp_path / "missing", create=False)

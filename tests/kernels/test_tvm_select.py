"""The never-slower rule (kernels.tvm.select): a record goes into a build only if the whole network gets
faster with it. Real TVM builds; a forged record (an unscheduled loop nest that claims 1 ns in the
runner) stands in for the records that win in the runner and lose inside the network."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.tvm import build as tvm_build, db as tvm_db
from kernels.tvm.schedule import legalize
from kernels.tvm.select import compile_never_slower, keep_records, keys_by_symbol, task_times_in_network
from search_spaces import LayerSpec

SPECS = [LayerSpec("pwconv", 32, 96, 1, 1, 1, (28, 28), "relu", bn=True),
         LayerSpec("dwconv", 96, 96, 3, 1, 96, (28, 28), "relu", bn=True)]


def test_keep_records_needs_a_margin_inside_the_network():
    candidates = {1, 2, 3, 4}
    tuned = {1: 0.90, 2: 0.99, 3: 1.50, 4: 0.5}
    default = {1: 1.00, 2: 1.00, 3: 1.00}
    # 1: 10% faster (kept); 2: 1% faster, inside the margin; 3: slower; 4: no default timing in the network
    assert keep_records(candidates, tuned, default, margin=0.02) == {1}
    assert keep_records(candidates, tuned, default, margin=0.0) == {1, 2}
    assert keep_records(set(), tuned, default) == set()


@pytest.fixture(scope="module")
def model(tmp_path_factory, layers_model):
    """The SPECS layers as ONNX and Relax, their tasks, an input and the torch reference (conftest)."""
    return layers_model(SPECS, tmp_path_factory.mktemp("select"))


def _forge_unscheduled_record(db_dir, task, target) -> None:
    """A record that leaves the legalised loops as they are (serial, scalar) and claims 1 ns. Its trace only
    looks a block up: MetaSchedule's database ignores a record with an empty trace."""
    from tvm import s_tir
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.database import TuningRecord

    sch = s_tir.Schedule(task.mod)
    sch.get_sblock("root")
    database = tvm_db.open_database(db_dir)
    workload = database.commit_workload(task.mod)
    database.commit_tuning_record(TuningRecord(sch.trace, workload, [1e-9], target,
                                               ArgInfo.from_prim_func(task.mod["main"])))


@pytest.fixture
def forged(model, tmp_path):
    """``(task, database)``: the largest task's forged slow record, alone in a fresh database."""
    conv = max(model["tasks"], key=lambda t: t.total_flops)
    _forge_unscheduled_record(tmp_path / "db", conv, model["target"])
    return conv, tvm_db.open_database(tmp_path / "db")


@pytest.mark.tvm
@pytest.mark.slow
def test_symbols_map_to_task_keys(model):
    symbols = keys_by_symbol(legalize(model["mod"], model["target"]))
    assert set(symbols.values()) == {t.key for t in model["tasks"]}


@pytest.mark.tvm
@pytest.mark.slow
def test_a_record_that_loses_inside_the_network_is_not_applied(model, forged):
    conv, database = forged
    times = {str(t.key): 1e-3 for t in model["tasks"]}  # the runner's default times: the forged 1 ns beats them
    assert set(tvm_db.useful_records(model["tasks"], database, model["target"], times)) == {conv.key}
    # the old rule (the runner's verdict, above) applied it, and the network gets slower
    applied = tvm_db.compile_relax(model["mod"], model["target"], database, only={conv.key})
    default = tvm_db.compile_relax(model["mod"], model["target"], None)
    models = {"applied": tvm_build.TvmModel(applied.executable, threads=2),
              "default": tvm_build.TvmModel(default.executable, threads=2)}
    symbols = keys_by_symbol(legalize(model["mod"], model["target"]))
    inside = task_times_in_network(models, model["x"], symbols, rounds=5)
    assert inside["applied"][conv.key] > 1.3 * inside["default"][conv.key]
    logs = []
    selection = compile_never_slower(model["mod"], model["target"], database, x=model["x"],
                                     threads=2, rounds=5, ab_repeats=5, log=logs.append)
    assert selection.chosen == "default" and selection.candidates == 1 and selection.kept == 0
    assert selection.rejected[0]["record_us"] > 1.3 * selection.rejected[0]["default_us"]
    assert selection.to_dict()["records_kept"] == 0 and "0/1" in logs[0]
    # the chosen build's scheduled module is the default build's: the conv as the default rules scheduled it
    name = next(s for s, k in symbols.items() if k == conv.key)
    assert selection.scheduled[name].script() == default.scheduled[name].script() != applied.scheduled[name].script()
    out = tvm_build.TvmModel(selection.executable, threads=2).run(model["x"])
    np.testing.assert_allclose(out, model["ref"], atol=1e-4 * max(1.0, np.abs(model["ref"]).max()))


@pytest.mark.tvm
@pytest.mark.slow
def test_no_candidate_record_builds_the_default_untimed(model, tmp_path):
    database = tvm_db.open_database(tmp_path / "empty")
    selection = compile_never_slower(model["mod"], model["target"], database, x=model["x"],
                                     threads=2)
    assert selection.chosen == "default" and selection.candidates == 0 and selection.tuned is None
    assert selection.to_dict()["ratio_tuned_over_default"] is None
    out = tvm_build.TvmModel(selection.executable, threads=2).run(model["x"])
    np.testing.assert_allclose(out, model["ref"], atol=1e-4 * max(1.0, np.abs(model["ref"]).max()))


@pytest.mark.tvm
@pytest.mark.slow
def test_the_whole_network_ab_overrules_a_kept_record(model, forged):
    """A margin of -100 keeps the forged record per task; the whole-network A/B must still pick the default."""
    _, database = forged
    selection = compile_never_slower(model["mod"], model["target"], database, x=model["x"],
                                     threads=2, rounds=3, ab_repeats=7, margin=-100.0)
    assert selection.kept == 1 and selection.chosen == "default"
    assert selection.tuned.median_s > 1.3 * selection.default.median_s
    report = selection.to_dict()
    assert report["ratio_tuned_over_default"] > 1.3 and report["tuned_ms"]["repeats"] == 7


@pytest.mark.tvm
@pytest.mark.slow
def test_only_the_kept_records_are_rebuilt_into_the_ab(model, tmp_path, monkeypatch):
    """Two candidates, one kept (keep_records stubbed: the per-task verdict is tested above): the A/B build
    holds the kept record only, and the default still wins against a forged slow schedule."""
    import kernels.tvm.select as select

    conv, other = sorted(model["tasks"], key=lambda t: -t.total_flops)[:2]
    for task in (conv, other):
        _forge_unscheduled_record(tmp_path / "db", task, model["target"])
    database = tvm_db.open_database(tmp_path / "db")
    monkeypatch.setattr(select, "keep_records", lambda candidates, tuned, default, margin: {conv.key})
    selection = compile_never_slower(model["mod"], model["target"], database, x=model["x"], threads=2, rounds=3,
                                     ab_repeats=5)
    assert (selection.candidates, selection.kept, selection.chosen) == (2, 1, "default")
    assert [r["task"] for r in selection.rejected] == [other.name]
    assert selection.executable is selection.default_executable


def test_bad_settings_are_refused_before_any_build():
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        compile_never_slower(None, None, None, x=np.zeros(1), threads=2, rounds=0)
    with pytest.raises(ValueError, match="margin must be in"):
        compile_never_slower(None, None, None, x=np.zeros(1), threads=2, margin=1.5)

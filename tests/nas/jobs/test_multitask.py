"""Multi-task co-design: the composed space, its shared-device metrics and a real two-task search."""

from __future__ import annotations

import numpy as np
import pytest

import hw_profiles  # noqa: F401  (registers the accelerator template source)
from hw_profiles.template_table import TemplateModels
from nas.jobs.evaluator import Evaluator
from nas.jobs.multitask import METRICS, multitask_objectives
from nas.jobs.objectives import Objective
from nas.jobs.search import search
from search_spaces import InvalidArchError, NoLayerIRError, UnknownSpaceError, get_space
from search_spaces.multitask import MultiTaskSpace

NAME = "tasks(mnist=tiny_mbv3+hw(zcu104);digits=tiny_mbv3+hw(zcu104))"


@pytest.fixture(scope="module")
def space() -> MultiTaskSpace:
    return get_space(NAME)


def test_space_round_trips_and_splits_into_tasks(space):
    assert isinstance(space, MultiTaskSpace) and space.name == NAME and space.device == "zcu104"
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        parts = {task: space.part(arch, task) for task in space.tasks}
        assert space.combine(parts).arch_id == arch.arch_id
        assert space.parse(arch.to_dict()).arch_id == arch.arch_id
        assert space.parse({t: p.to_dict() for t, p in parts.items()}).arch_id == arch.arch_id
        assert space.decode(space.encode(arch)).arch_id == arch.arch_id
    # the id is each task's canonical id: a switched-off kernel of one task does not change it
    a = space.sample(rng)
    b = space.combine({t: space.part(a, t) for t in space.tasks})
    assert a.arch_id == b.arch_id


def test_space_refuses_what_it_cannot_be(space):
    base = get_space("tiny_mbv3+hw(zcu104)")
    with pytest.raises(ValueError, match="at least two tasks"):
        MultiTaskSpace({"a": base})
    with pytest.raises(ValueError, match="co-design space"):
        MultiTaskSpace({"a": base, "b": get_space("tiny_mbv3")})
    with pytest.raises(ValueError, match="task name"):
        MultiTaskSpace({"A b": base, "c": base})
    with pytest.raises(UnknownSpaceError, match="tasks"):
        get_space("tasks(a=tiny_mbv3+hw(zcu104);oops)")
    with pytest.raises(NoLayerIRError, match="part"):
        space.layers(space.sample(np.random.default_rng(1)))
    with pytest.raises(InvalidArchError, match="unknown task"):
        space.part(space.sample(np.random.default_rng(1)), "cifar")


def test_round_metrics_are_the_tasks_sub_accelerators_combined(space):
    evaluator = Evaluator(space, [Objective("makespan", "tasks_makespan_ms"), Objective("energy", "tasks_energy_mj"),
                                  Objective("dsp", "tasks_dsp")])
    assert [c.label for c in evaluator.constraints] == ["tasks_dsp <= 1728", "tasks_bram18k <= 624"]
    rng = np.random.default_rng(3)
    archs = [space.sample(rng) for _ in range(25)]
    outcomes = evaluator.screen(archs)
    for arch, outcome in zip(archs, outcomes):
        per = {t: TemplateModels(sub).metrics(space.part(arch, t)) for t, sub in space.tasks.items()}
        latency = max(p["latency_ms"].value for p in per.values())
        dsp = sum(p["dsp"].value for p in per.values())
        assert outcome.metrics["makespan"].value == pytest.approx(latency, rel=1e-12)
        assert outcome.metrics["energy"].value == pytest.approx(sum(p["energy_mj"].value for p in per.values()))
        assert outcome.metrics["dsp"].value == dsp
        assert outcome.rejected == (dsp > 1728 or sum(p["bram18k"].value for p in per.values()) > 624)
        m = outcome.metrics["makespan"]
        assert m.source == "estimated" and m.profile.startswith("mnist:zcu104@2") and " & digits:zcu104@2" in m.profile
    assert any(o.rejected for o in outcomes) and not all(o.rejected for o in outcomes)
    assert set(METRICS) <= set(evaluator.catalog.cheap)


@pytest.mark.slow
def test_a_two_task_search_with_a_real_checkpoint(space, tiny_checkpoint, tmp_path):
    objectives = multitask_objectives(space, {"mnist": tiny_checkpoint, "digits": tiny_checkpoint},
                                      data={"digits": "digits"})
    result = search(space, objectives, algorithm="nsga2", budget=8, seed=0, storage=f"sqlite:///{tmp_path / 's.db'}",
                    job="two", progress=False)
    complete = [r for r in result.records() if r.state == "complete"]
    assert len(complete) == 8
    front = result.pareto()
    assert {"acc_mnist", "acc_digits", "makespan_ms", "energy_mj"} <= set(front.columns)
    assert (front["acc_digits.source"] == "measured").all() and (front["makespan_ms.source"] == "estimated").all()
    assert (front["acc_mnist"].between(0, 1)).all() and (front["acc_digits"].between(0, 1)).all()
    assert (front["tasks_dsp <= 1728"] <= 0).all()

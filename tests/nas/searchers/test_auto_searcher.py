"""``auto``: the default searcher is chosen by the job's objectives (linas if one is expensive, else nsga2)."""

from __future__ import annotations

import pytest

from nas.jobs.objectives import Objective
from nas.jobs.search import search
from nas.searchers import (
    AUTO_SEARCHER,
    DEFAULT_EXPENSIVE_SEARCHER,
    DEFAULT_SEARCHER,
    UnknownSearcherError,
    create_searcher,
    list_searchers,
    resolve_searcher,
)
from search_spaces import get_space


def test_auto_resolves_by_the_objectives_and_nested_mode():
    assert AUTO_SEARCHER == "auto" and AUTO_SEARCHER not in list_searchers()
    assert (DEFAULT_SEARCHER, DEFAULT_EXPENSIVE_SEARCHER) == ("nsga2", "linas")
    assert {DEFAULT_SEARCHER, DEFAULT_EXPENSIVE_SEARCHER} <= set(list_searchers())
    assert resolve_searcher("auto", expensive=True) == "linas"
    assert resolve_searcher("auto", expensive=False) == "nsga2"
    assert resolve_searcher("auto", expensive=True, nested=True) == "nsga2"
    assert resolve_searcher("auto", expensive=False, nested=True) == "nsga2"


@pytest.mark.parametrize("name", ["nsga2", "linas", "random", "tpe", "no-such-searcher"])
@pytest.mark.parametrize("expensive", [True, False])
def test_explicit_names_are_returned_unchanged(name, expensive):
    assert resolve_searcher(name, expensive=expensive) == name
    assert resolve_searcher(name, expensive=expensive, nested=True) == name


def test_auto_is_not_a_registered_searcher():
    with pytest.raises(UnknownSearcherError, match="'auto'.*nsga2"):
        create_searcher("auto", space=get_space("tiny_mbv3"), n_objectives=2, seed=0)


def _accuracy_stand_in(arch) -> float:
    """A user callable: expensive unless marked cheap (``Evaluator.is_cheap``)."""
    return float(sum(len(str(v)) for v in arch.to_dict().values()))


@pytest.mark.parametrize(("objectives", "expected"), [
    ([Objective("macs", "macs"), Objective("params", "params")], "nsga2"),
    ([Objective("acc", _accuracy_stand_in, direction="maximize"), Objective("macs", "macs")], "linas"),
], ids=["all-cheap", "expensive"])
def test_search_records_the_resolved_algorithm(objectives, expected):
    result = search(get_space("tiny_mbv3"), objectives, budget=12, seed=0, storage=None, progress=False)
    assert result.job.job_config.algorithm == expected
    assert result.name == f"tiny_mbv3-{expected}-seed0"  # the default job name uses the resolved name
    assert len(result.trials().query("state == 'complete'")) == 12


def test_explicit_algorithm_is_kept_for_an_expensive_job():
    objectives = [Objective("acc", _accuracy_stand_in, direction="maximize"), Objective("macs", "macs")]
    result = search(get_space("tiny_mbv3"), objectives, algorithm="random", budget=4, seed=0, progress=False)
    assert result.job.job_config.algorithm == "random"


def test_auto_in_nested_codesign_is_nsga2():
    from search_spaces import AcceleratorSpace, tiny_mbv3

    knobs = {"dataflow": ("weight_stationary",), "pe_rows": (16, 32), "pe_cols": (16, 32),
             "weight_buffer_bytes": (131072,)}
    default = {"dataflow": "weight_stationary", "pe_rows": 32, "pe_cols": 32, "weight_buffer_bytes": 131072}
    space = AcceleratorSpace(tiny_mbv3(), device="zcu104", knobs=knobs, default=default)
    objectives = [Objective("acc", _accuracy_stand_in, direction="maximize"), Objective("lat", "zcu104.latency_ms")]
    result = search(space, objectives, budget=4, seed=0, progress=False, codesign="nested")
    assert result.job.job_config.algorithm == "nsga2"


def test_auto_on_a_user_space_whose_objectives_are_all_expensive():
    """No cheap objective or constraint to table: linas gets the per-arch cheap path, not block tables."""
    from search_spaces import Choice, SearchSpace

    space = SearchSpace("auto-toy", [Choice("a", [0, 1, 2, 3]), Choice("b", [0, 1, 2, 3]), Choice("c", ["x", "y"])])
    objectives = [Objective("q", lambda arch: float(arch["a"] * arch["b"]), direction="maximize"),
                  Objective("size", lambda arch: float(arch["a"] + arch["b"]))]
    result = search(space, objectives, budget=12, seed=0, progress=False)
    assert result.job.job_config.algorithm == "linas"
    assert len(result.trials().query("state == 'complete'")) == 12


def test_auto_cannot_be_registered_as_a_searcher():
    from nas.searchers import register_searcher

    with pytest.raises(ValueError, match="'auto' is reserved"):
        register_searcher("auto", lambda **kwargs: None)

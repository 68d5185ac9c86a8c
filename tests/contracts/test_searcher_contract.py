"""The contract every registered searcher keeps (see nas/searchers/base.py), through ``nas.testing.searchers``.

Every test runs for every name in ``list_searchers()``. ``gp`` refits Gaussian processes on
every ask (about a second each on a shared 2-core machine) and ``linas`` refits its predictor
ensembles and runs an inner NSGA-II on every ask, so their parametrisations carry the ``slow``
marker; everything else runs in the default suite.
"""

from __future__ import annotations

import functools

import pytest

from nas.searchers import create_searcher, list_searchers
from nas.testing.searchers import SearcherContract

SLOW_SEARCHERS = {"gp", "linas"}
#: Searchers with generations; a small population keeps several generations inside the toy budgets.
POPULATION_SEARCHERS = {"nsga2", "nsga3", "agemoea2", "smsemoa", "moead", "optuna-nsga2"}

SEARCHERS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SEARCHERS else n for n in list_searchers()]


@pytest.fixture(params=SEARCHERS)
def searcher_name(request) -> str:
    return request.param


class TestRegisteredSearchers(SearcherContract):
    @pytest.fixture
    def searcher_factory(self, searcher_name):
        return functools.partial(create_searcher, searcher_name)

    @pytest.fixture
    def small_budget_options(self, searcher_name):
        return {"population_size": 8} if searcher_name in POPULATION_SEARCHERS else {}

    @pytest.fixture
    def searcher_is_slow(self, searcher_name):
        return searcher_name in SLOW_SEARCHERS

    @pytest.fixture
    def searcher_learns(self, searcher_name):
        return searcher_name != "random"


def test_the_suite_covers_every_registered_searcher():
    assert [p.values[0] if hasattr(p, "values") else p for p in SEARCHERS] == list_searchers()
    assert "random" in list_searchers()  # the baseline the suite compares with

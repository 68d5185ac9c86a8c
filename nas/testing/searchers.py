"""The contract every searcher keeps (``nas.searchers.base.Searcher``), as a reusable pytest suite.

Subclass :class:`SearcherContract` in a test module and give it a ``searcher_factory`` fixture:
a callable taking the registry's keyword arguments (``space``, ``n_objectives``, ``n_constraints``,
``seed`` and options) and returning a new searcher::

    import pytest
    from nas.testing.searchers import SearcherContract

    class TestMySearcher(SearcherContract):
        @pytest.fixture
        def searcher_factory(self):
            return MySearcher  # MySearcher(*, space, n_objectives, n_constraints, seed, **options)

Optional fixtures to override: ``small_budget_options`` (options for the toy-budget tests, e.g.
``{"population_size": 8}`` so that several generations fit), ``searcher_is_slow`` (True: smaller
budgets where a test compares with random search) and ``searcher_learns`` (False for a searcher that
is itself random: it is not compared with random search).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import pytest

from nas.searchers import SearcherError, create_searcher, feasible_mask, hypervolume, run_ask_tell
from nas.searchers.base import Searcher
from search_spaces import Choice, SearchSpace

__all__ = ["ALIAS", "BIG", "TOY", "SearcherContract", "toy_eval"]

SearcherFactory = Callable[..., Searcher]

TOY = SearchSpace(
    "toy",
    [Choice("a", [0, 1, 2, 3]), Choice("b", ["x", "y", "z"]), Choice("c", [1, 2, 4, 8]), Choice("d", [True, False])],
)  # 96 archs


class _AliasSpace(SearchSpace):
    """``c`` is ignored when ``d`` is False: 24 codes, 15 distinct networks."""

    def inactive(self, arch):
        return frozenset({"c"}) if arch["d"] is False else frozenset()


ALIAS = _AliasSpace("alias", [Choice("a", [0, 1, 2]), Choice("c", [1, 2, 4, 8]), Choice("d", [True, False])])
BIG = SearchSpace("big", [Choice(f"p{i}", list(range(8))) for i in range(6)])  # 262,144 archs


def toy_eval(space: SearchSpace, n_constraints: int = 1):
    """Two conflicting objectives over the codes; one constraint (``c`` code <= 2)."""

    def evaluate(archs):
        X = np.array([space.encode(a) for a in archs], dtype=float)
        F = np.column_stack([X.sum(axis=1), -X[:, 0] * 2 + X[:, -1] - X[:, 1] ** 2])
        G = (X[:, [min(2, X.shape[1] - 1)]] - 2.0) if n_constraints else None
        return F, G

    return evaluate


def _ids(archs) -> list[str]:
    return [a.arch_id for a in archs]


def _pulls_to_infeasible(archs):
    """f1 wants large codes, f2 wants codes near 5, but only small codes are feasible (~7%)."""
    X = np.array([BIG.encode(a) for a in archs], dtype=float)
    w = np.array([3, 2, 1, 2, 1, 1.5])
    return np.column_stack([-X.sum(axis=1), ((X - 5) ** 2).sum(axis=1)]), (X @ w / w.sum() - 2.0)[:, None]


def _zdt1(archs):
    """ZDT1 on codes scaled to [0, 1]: the front needs p1..p5 all at 0, which random search
    almost never hits (1 in 8**5)."""
    X = np.array([BIG.encode(a) for a in archs], dtype=float) / 7.0
    g = 1.0 + 9.0 * X[:, 1:].mean(axis=1)
    return np.column_stack([X[:, 0], g * (1.0 - np.sqrt(X[:, 0] / g))]), None


def _random(**kwargs) -> Searcher:
    return create_searcher("random", **kwargs)


def _n_feasible(factory: SearcherFactory, seeds, budget: int) -> int:
    total = 0
    for seed in seeds:
        searcher = factory(space=BIG, n_objectives=2, n_constraints=1, seed=seed)
        history = run_ask_tell(searcher, _pulls_to_infeasible, budget=budget, batch_size=10)
        total += int(feasible_mask(history.F, history.G).sum())
    return total


def _median_hv(factory: SearcherFactory, budget: int) -> float:
    values = []
    for seed in range(3):
        searcher = factory(space=BIG, n_objectives=2, n_constraints=0, seed=seed)
        history = run_ask_tell(searcher, _zdt1, budget=budget, batch_size=10)
        values.append(hypervolume(history.F[history.pareto_mask()], [1.1, 1.5]))
    return float(np.median(values))


class SearcherContract:
    """Every test takes ``searcher_factory``; see the module docstring."""

    @pytest.fixture
    def searcher_factory(self) -> SearcherFactory:
        raise NotImplementedError("give your SearcherContract subclass a `searcher_factory` fixture")

    @pytest.fixture
    def small_budget_options(self) -> Mapping:
        return {}

    @pytest.fixture
    def searcher_is_slow(self) -> bool:
        return False

    @pytest.fixture
    def searcher_learns(self) -> bool:
        return True

    @pytest.fixture
    def make_searcher(self, searcher_factory, small_budget_options):
        """``make_searcher(space=TOY, *, seed, n_objectives, n_constraints)``: one with the toy-budget options."""

        def make_searcher(space: SearchSpace = TOY, *, seed: int = 0, n_objectives: int = 2,
                          n_constraints: int = 1) -> Searcher:
            return searcher_factory(space=space, n_objectives=n_objectives, n_constraints=n_constraints, seed=seed,
                                    **small_budget_options)

        return make_searcher

    # ----------------------------------------------------------------------- budget & dedup
    def test_budget_is_respected_exactly(self, make_searcher):
        calls: list[int] = []
        base = toy_eval(TOY)

        def evaluate(archs):
            calls.append(len(archs))
            return base(archs)

        history = run_ask_tell(make_searcher(), evaluate, budget=37, batch_size=8)
        assert sum(calls) == len(history) == 37
        assert max(calls) <= 8
        assert history.F.shape == (37, 2) and history.G.shape == (37, 1)
        assert run_ask_tell(make_searcher(), evaluate, budget=0, batch_size=8).archs == ()

    def test_never_asks_an_arch_twice_and_asks_canonical_archs(self, make_searcher):
        searcher = make_searcher(ALIAS, n_constraints=0)
        evaluate = toy_eval(ALIAS, n_constraints=0)
        asked = []
        for n in (4, 7, 1, 9):
            batch = searcher.ask(n)
            assert len(batch) == min(n, 15 - len(asked))
            assert all(ALIAS.canonicalize(a) == a for a in batch)
            asked += batch
            searcher.tell(batch, *evaluate(batch))
        assert len(set(_ids(asked))) == len(asked) == 15  # every distinct network once, aliases never

    def test_asks_without_tell_in_between_stay_distinct(self, make_searcher):
        searcher = make_searcher()
        evaluate = toy_eval(TOY)
        first, second = searcher.ask(5), searcher.ask(11)  # more than one generation of 8, nothing told
        assert len(first) == 5 and len(second) == 11
        searcher.tell(second, *evaluate(second))  # out of order
        searcher.tell(first, *evaluate(first))
        third = searcher.ask(9)
        assert len(set(_ids(first + second + third))) == 25
        assert set(_ids(searcher.pending)) == set(_ids(third))
        with pytest.raises(SearcherError):
            searcher.tell(first[:1], *evaluate(first[:1]))  # already told

    # -------------------------------------------------------------------------- determinism
    @staticmethod
    def _sequence(make_searcher, seed: int) -> list[str]:
        return _ids(run_ask_tell(make_searcher(seed=seed), toy_eval(TOY), budget=30, batch_size=7).archs)

    def test_same_seed_gives_same_sequence(self, make_searcher):
        assert self._sequence(make_searcher, 3) == self._sequence(make_searcher, 3)

    def test_different_seeds_give_different_sequences(self, make_searcher):
        assert self._sequence(make_searcher, 3) != self._sequence(make_searcher, 4)

    # --------------------------------------------------------------------------- warm start
    @pytest.mark.parametrize("n_history", [3, 30])  # fewer / more than a population
    def test_warm_started_archs_are_never_asked(self, make_searcher, n_history):
        rng = np.random.default_rng(7)
        history = []
        while len(history) < n_history:
            arch = TOY.sample(rng)
            if arch.arch_id not in _ids(history):
                history.append(arch)
        evaluate = toy_eval(TOY)
        searcher = make_searcher()
        searcher.warm_start(history, *evaluate(history))
        asked = run_ask_tell(searcher, evaluate, budget=40, batch_size=6).archs
        assert len(asked) == 40
        assert not set(_ids(history)) & set(_ids(asked))
        searcher.warm_start(history[:2], *evaluate(history[:2]))  # repeats are skipped
        late = [a for a in (TOY.sample(rng) for _ in range(200)) if not searcher.is_seen(a)][:5]
        late = list({a.arch_id: a for a in late}.values())
        searcher.warm_start(late, *evaluate(late))  # warm start after asks
        more = searcher.ask(10)
        assert not set(_ids(more)) & set(_ids(history + late + list(asked)))

    # --------------------------------------------------------------------------- exhaustion
    @pytest.mark.parametrize("space_name", ["tiny", "alias"])
    def test_exhausting_a_tiny_space_returns_fewer_without_hanging(self, make_searcher, space_name):
        space = ALIAS if space_name == "alias" else SearchSpace("tiny", [Choice("a", [1, 2, 3]), Choice("b", [0, 1])])
        total = 15 if space_name == "alias" else 6
        evaluate = toy_eval(space, n_constraints=0)
        searcher = make_searcher(space, n_constraints=0)
        got = []
        for _ in range(6):
            batch = searcher.ask(4)
            got += batch
            if batch:
                searcher.tell(batch, *evaluate(batch))
        assert len(got) == len(set(_ids(got))) == total
        assert searcher.ask(4) == []

    def test_one_arch_space(self, make_searcher):
        space = SearchSpace("one", [Choice("a", [1]), Choice("b", ["x"])])
        searcher = make_searcher(space, n_constraints=0)
        batch = searcher.ask(3)
        assert len(batch) == 1
        searcher.tell(batch, [[1.0, 2.0]])
        assert searcher.ask(3) == []

    # --------------------------------------------------------------------- failures, feasibility
    @pytest.mark.parametrize("n_constraints", [0, 1])
    def test_failed_evaluations_do_not_crash_and_never_reach_the_front(self, make_searcher, n_constraints):
        base = toy_eval(TOY, n_constraints)

        def evaluate(archs):
            F, G = base(archs)
            bad = np.array([a["b"] == "y" for a in archs])
            F[bad] = np.nan
            if G is not None:
                G[bad] = np.nan
            return F, G

        history = run_ask_tell(make_searcher(n_constraints=n_constraints), evaluate, budget=45, batch_size=9)
        assert len(history) == len(set(_ids(history.archs))) == 45
        front = history.pareto_mask()
        assert front.any()
        assert not any(history.archs[i]["b"] == "y" for i in np.flatnonzero(front))

    def test_front_is_non_empty_and_feasible(self, make_searcher):
        history = run_ask_tell(make_searcher(), toy_eval(TOY), budget=40, batch_size=8)
        front = history.pareto_mask()
        assert front.any()
        assert (history.G[front] <= 0).all()

    def test_finds_feasible_points_where_feasibility_matters(self, searcher_factory, searcher_is_slow,
                                                             searcher_learns):
        seeds, budget = ((0,), 40) if searcher_is_slow else ((0, 1), 100)
        found = _n_feasible(searcher_factory, seeds, budget)
        assert found >= 1
        if searcher_learns:
            assert found >= _n_feasible(_random, seeds, budget)  # a searcher that is told constraints uses them

    # -------------------------------------------------------------------------------- quality
    def test_quality_at_least_random_search(self, searcher_factory, searcher_is_slow, searcher_learns):
        if not searcher_learns:
            pytest.skip("random search is the baseline itself")
        budget = 60 if searcher_is_slow else 300  # e.g. gp: ~1 s per ask here
        assert _median_hv(searcher_factory, budget) >= _median_hv(_random, budget)

"""Unit tests of nas.searchers: registry, validation, Pareto helpers and adapter specifics.
The behaviour every searcher shares is in tests/contracts/test_searcher_contract.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nas.searchers import (
    DEFAULT_SEARCHER,
    History,
    SearcherError,
    UnknownSearcherError,
    create_searcher,
    feasible_mask,
    hypervolume,
    list_searchers,
    pareto_mask,
    register_searcher,
    run_ask_tell,
)
from search_spaces import Choice, DuplicateNameError, NASError, SearchSpace

SPACE = SearchSpace("toy", [Choice("a", [0, 1, 2, 3]), Choice("b", ["x", "y", "z"]), Choice("c", [1, 2, 4, 8])])


def codes_eval(space, n_objectives=2, n_constraints=0):
    def evaluate(archs):
        X = np.array([space.encode(a) for a in archs], dtype=float)
        F = np.column_stack([X.sum(axis=1), -X[:, 0]] + [X[:, i % X.shape[1]] * (i - 1) for i in range(2, n_objectives)])
        G = np.column_stack([X[:, j % X.shape[1]] - 1.5 for j in range(n_constraints)]) if n_constraints else None
        return F, G

    return evaluate


# -------------------------------------------------------------------------------- registry
def test_registry_lists_the_builtin_searchers():
    names = list_searchers()
    assert {"random", "nsga2", "nsga3", "smsemoa", "moead", "tpe", "optuna-nsga2"} <= set(names)
    assert names == sorted(names)
    assert DEFAULT_SEARCHER in names


def test_unknown_searcher_lists_valid_names():
    with pytest.raises(UnknownSearcherError) as err:
        create_searcher("nsga4", space=SPACE, n_objectives=2, seed=0)
    assert isinstance(err.value, NASError) and isinstance(err.value, KeyError)
    assert "nsga4" in str(err.value) and "nsga2" in str(err.value) and "random" in str(err.value)


def test_duplicate_registration_raises():
    with pytest.raises(DuplicateNameError):
        register_searcher("random", lambda **kw: None)


def test_importing_searchers_loads_neither_pymoo_nor_optuna():
    code = (
        "import sys, nas.searchers as s; s.list_searchers(); "
        "bad = [m for m in ('pymoo', 'optuna', 'torch') if m in sys.modules]; assert not bad, bad"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"n_objectives": 0}, "0"),
        ({"seed": -1}, "-1"),
        ({"seed": True}, "True"),
        ({"n_constraints": 1.5}, "1.5"),
        ({"space": "toy"}, "str"),
    ],
)
@pytest.mark.parametrize("name", ["random", "nsga2", "tpe"])
def test_constructor_validates_with_the_bad_value(name, kwargs, bad):
    args = {"space": SPACE, "n_objectives": 2, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=bad):
        create_searcher(name, **args)


@pytest.mark.parametrize("name", ["nsga3", "moead", "smsemoa"])
def test_algorithms_that_need_two_objectives_say_so(name):
    with pytest.raises(ValueError, match="n_objectives >= 2"):
        create_searcher(name, space=SPACE, n_objectives=1, seed=0)


def test_population_size_is_validated():
    with pytest.raises(ValueError, match="population_size.*2"):
        create_searcher("nsga2", space=SPACE, n_objectives=2, seed=0, population_size=2)
    with pytest.raises(TypeError):  # no **kwargs bags: an option a searcher lacks is an error
        create_searcher("random", space=SPACE, n_objectives=2, seed=0, population_size=8)


def test_ask_validates_n_and_zero_asks_nothing():
    s = create_searcher("nsga2", space=SPACE, n_objectives=2, seed=0)
    assert s.ask(0) == []
    with pytest.raises(ValueError, match="-1"):
        s.ask(-1)


def test_tell_rejects_misuse():
    s = create_searcher("random", space=SPACE, n_objectives=2, n_constraints=1, seed=0)
    archs = s.ask(3)
    F, G = np.zeros((3, 2)), np.zeros((3, 1))
    with pytest.raises(SearcherError, match=r"\(3, 2\)"):
        s.tell(archs, np.zeros((3, 3)), G)
    with pytest.raises(SearcherError, match="constraint"):
        s.tell(archs, F)
    with pytest.raises(SearcherError, match="twice"):
        s.tell([archs[0], archs[0]], F[:2], G[:2])
    with pytest.raises(SearcherError, match="single"):
        s.tell(archs[0], F[:1], G[:1])
    other = next(a for a in (SPACE.sample(np.random.default_rng(i)) for i in range(100)) if not s.is_seen(a))
    with pytest.raises(SearcherError, match="never asked"):
        s.tell([other], F[:1], G[:1])
    with pytest.raises(SearcherError, match="awaits tell"):
        s.warm_start(archs[:1], F[:1], G[:1])
    s.tell(archs, F, G)
    with pytest.raises(SearcherError, match="already told"):
        s.tell(archs[:1], F[:1], G[:1])
    assert s.n_asked == 3 and s.n_told == 3 and s.pending == ()


def test_tell_accepts_non_canonical_codes_of_a_pending_arch():
    class Alias(SearchSpace):
        def inactive(self, arch):
            return frozenset({"c"}) if arch["a"] == 0 else frozenset()

    space = Alias("alias", list(SPACE.params))
    s = create_searcher("random", space=space, n_objectives=1, seed=0)
    archs = s.ask(48)  # every distinct network: 3*3*4 + 1*3 = 39
    assert len(archs) == 39
    alias = next(a for a in archs if a["a"] == 0)
    raw = space.parse({**alias.to_dict(), "c": 8})  # same network, other code
    assert raw != alias and raw.arch_id == alias.arch_id
    s.tell([raw], [[1.0]])
    assert alias not in s.pending


# ---------------------------------------------------------------------------- pareto and hv
def test_pareto_mask_by_hand():
    F = np.array([[1, 3], [2, 2], [3, 1], [2, 3], [1, 3], [0, 0], [np.nan, 0], [0.5, 5]], dtype=float)
    G = np.array([[0], [0], [-1], [0], [0], [1], [0], [0]], dtype=float)
    mask = pareto_mask(F, G)
    # (2,3) is dominated; the duplicate (1,3) rows are both kept; (0,0) is infeasible; NaN failed
    assert mask.tolist() == [True, True, True, False, True, False, False, True]
    assert feasible_mask(F, G).tolist() == [True, True, True, True, True, False, False, True]
    assert pareto_mask(F).tolist() == [False, False, False, False, False, True, False, False]
    assert not pareto_mask(np.zeros((0, 2))).any()


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    F = rng.integers(0, 6, size=(300, 3)).astype(float)
    brute = [not any((F[j] <= F[i]).all() and (F[j] < F[i]).any() for j in range(len(F))) for i in range(len(F))]
    assert pareto_mask(F).tolist() == brute


def test_hypervolume_by_hand():
    F = np.array([[1, 3], [2, 2], [3, 1], [5, 0], [np.nan, 1]], dtype=float)
    assert hypervolume(F, [4, 4]) == pytest.approx(6.0)  # staircase 1 + 2 + 3; (5,0) and NaN add nothing
    assert hypervolume(np.zeros((0, 2)), [4, 4]) == 0.0
    with pytest.raises(SearcherError):
        hypervolume(F, [4, 4, 4])


# ------------------------------------------------------------------------------------ loop
def test_run_ask_tell_validates_and_stops_when_the_space_runs_out():
    s = create_searcher("random", space=SPACE, n_objectives=2, seed=0)
    with pytest.raises(ValueError, match="budget"):
        run_ask_tell(s, codes_eval(SPACE), budget=-1, batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        run_ask_tell(s, codes_eval(SPACE), budget=4, batch_size=0)
    history = run_ask_tell(s, codes_eval(SPACE), budget=500, batch_size=16)
    assert isinstance(history, History) and len(history) == SPACE.size == 48
    assert history.G.shape == (48, 0)


# ---------------------------------------------------------------------------- pymoo specifics
@pytest.mark.parametrize("name", ["nsga2", "nsga3", "smsemoa", "moead"])
@pytest.mark.parametrize("batch", [7, 20, 45])  # not dividing, equal to and above the population of 20
def test_pymoo_batches_of_any_size(name, batch):
    space = SearchSpace("six", [Choice(f"p{i}", list(range(6))) for i in range(5)])
    s = create_searcher(name, space=space, n_objectives=2, n_constraints=1, seed=0)
    history = run_ask_tell(s, codes_eval(space, n_constraints=1), budget=150, batch_size=batch)
    assert len(history) == len({a.arch_id for a in history.archs}) == 150
    # the algorithm, not the random fallback, proposed most archs: they concentrate on the front
    assert s._alg is not None and s._alg.n_gen >= 150 // max(batch, 20)


@pytest.mark.parametrize("name", ["nsga3", "moead", "smsemoa", "nsga2"])
def test_three_objectives(name):
    space = SearchSpace("six", [Choice(f"p{i}", list(range(6))) for i in range(5)])
    s = create_searcher(name, space=space, n_objectives=3, n_constraints=2, seed=1)
    history = run_ask_tell(s, codes_eval(space, n_objectives=3, n_constraints=2), budget=80, batch_size=10)
    assert len(history) == 80 and history.F.shape == (80, 3)
    assert history.pareto_mask().any()


def test_reference_directions_fit_the_population():
    from nas.searchers.pymoo_searchers import _ref_dirs

    assert _ref_dirs(2, 20).shape == (20, 2)
    assert _ref_dirs(3, 20).shape == (15, 3)
    assert _ref_dirs(3, 21).shape == (21, 3)
    assert np.allclose(_ref_dirs(3, 20).sum(axis=1), 1.0)


def test_moead_penalises_infeasible_points():
    space = SearchSpace("six", [Choice(f"p{i}", list(range(6))) for i in range(5)])
    s = create_searcher("moead", space=space, n_objectives=2, n_constraints=1, seed=0)
    history = run_ask_tell(s, codes_eval(space, n_constraints=1), budget=60, batch_size=10)
    assert history.pareto_mask().any()
    F, G = np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[0.0], [2.0]])
    penalised = s._penalised(F, G, np.array([0.0, 1.0]))
    assert (penalised[0] == 1.0).all() and (penalised[1] > s._worst_f).all()


def test_pymoo_warm_start_of_a_whole_population_skips_the_random_generation():
    space = SearchSpace("six", [Choice(f"p{i}", list(range(6))) for i in range(5)])
    evaluate = codes_eval(space)
    rng = np.random.default_rng(0)
    history = list({a.arch_id: a for a in (space.sample(rng) for _ in range(40))}.values())
    s = create_searcher("nsga2", space=space, n_objectives=2, seed=0)
    s.warm_start(history, *evaluate(history))
    s.ask(5)
    assert s._alg.is_initialized  # the history was told as generation one
    assert len(s._alg.pop) == len(history)  # NSGA-II ranks all of it; the next tell cuts back to 20
    s.tell(s.pending, *evaluate(list(s.pending)))
    assert len(s._alg.pop) == 20


# --------------------------------------------------------------------------- optuna specifics
def test_optuna_stores_constraints_and_failures_in_its_study():
    optuna = pytest.importorskip("optuna")
    s = create_searcher("tpe", space=SPACE, n_objectives=2, n_constraints=1, seed=0)
    archs = s.ask(4)
    F, G = codes_eval(SPACE, n_constraints=1)(archs)
    F[0] = np.nan
    s.tell(archs, F, G)
    trials = s._study.get_trials(deepcopy=False)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert [t.constraints["c0"] for t in trials[1:]] == pytest.approx(G[1:, 0].tolist())
    assert trials[0].constraints["c0"] >= 1.0  # a failure is infeasible
    unconstrained = create_searcher("tpe", space=SPACE, n_objectives=2, seed=0)
    archs = unconstrained.ask(2)
    unconstrained.tell(archs, [[np.nan, np.nan], [1.0, 2.0]])
    states = [t.state for t in unconstrained._study.get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]


@pytest.mark.parametrize("name", ["tpe", "optuna-nsga2"])
def test_optuna_learns_from_warm_start_and_fallback_archs(name):
    s = create_searcher(name, space=SPACE, n_objectives=2, seed=0)
    rng = np.random.default_rng(3)
    history = list({a.arch_id: a for a in (SPACE.sample(rng) for _ in range(12))}.values())
    s.warm_start(history, *codes_eval(SPACE)(history))
    assert len(s._study.get_trials(deepcopy=False)) == len(history)
    archs = s.ask(5)
    assert not {a.arch_id for a in archs} & {a.arch_id for a in history}


# ---------------------------------------------------------------------- loop & termination
def test_termination_stops_at_the_budget_the_ask_cap_or_exhaustion():
    from nas.searchers import Termination

    s = create_searcher("random", space=SPACE, n_objectives=2, seed=0)
    base = codes_eval(SPACE)

    def half_counted(archs):  # only archs with b == "x" count against the budget
        F, G = base(archs)
        return F, G, [a["b"] == "x" for a in archs]

    t = Termination(6, max_asked=40)
    history = run_ask_tell(s, half_counted, batch_size=4, termination=t)
    assert t.reason == "budget" and t.evaluated >= 6 and t.asked == len(history)
    capped = Termination(1000, max_asked=10)
    run_ask_tell(create_searcher("random", space=SPACE, n_objectives=2, seed=0), half_counted, batch_size=4,
                 termination=capped)
    assert capped.reason == "max_asked" and capped.asked == 12
    resumed = Termination(5, evaluated=5)
    assert resumed.done() and resumed.reason == "budget"
    out = Termination(100)
    run_ask_tell(create_searcher("random", space=SPACE, n_objectives=2, seed=0), base, batch_size=16,
                 termination=out)
    assert out.reason == "exhausted" and out.asked == SPACE.size
    with pytest.raises(ValueError, match="budget or termination"):
        run_ask_tell(s, base, batch_size=4)


# ------------------------------------------------------------------------------- linas
def test_linas_is_registered_and_built_from_the_uniform_arguments():
    from nas.searchers import CheapObjectives, searcher_uses_cheap
    from nas.searchers.predictor_guided import PredictorGuidedSearcher
    from predictors.features import one_hot

    assert "linas" in list_searchers() and searcher_uses_cheap("linas") and not searcher_uses_cheap("nsga2")
    alone = create_searcher("linas", space=SPACE, n_objectives=2, n_constraints=1, seed=0)
    assert isinstance(alone, PredictorGuidedSearcher)
    assert alone.predicted == [0, 1] and alone.predicted_constraints == [0]  # nothing cheap: all predicted
    evaluate = codes_eval(SPACE, n_constraints=1)
    cheap = CheapObjectives(indices=(1,), evaluate=lambda archs: evaluate(archs))
    guided = create_searcher("linas", space=SPACE, n_objectives=2, n_constraints=1, seed=0, cheap=cheap)
    assert guided.predicted == [0] and guided.predicted_constraints == []
    nsga2 = create_searcher("nsga2", space=SPACE, n_objectives=2, n_constraints=1, seed=0, cheap=cheap)
    assert nsga2.n_objectives == 2  # searchers that do not use the hook ignore it
    with pytest.raises(SearcherError, match="every objective is cheap"):
        create_searcher("linas", space=SPACE, n_objectives=1, seed=0, cheap=CheapObjectives((0,), evaluate))
    archs = [SPACE.sample(np.random.default_rng(i)) for i in range(3)]
    codes = np.vstack([SPACE.encode(a) for a in archs])
    ordinal = codes / np.maximum(SPACE.cardinalities - 1, 1)  # each setting's position among its options
    assert np.array_equal(alone._all_columns(codes), np.hstack([np.vstack([one_hot(SPACE, a) for a in archs]), ordinal]))
    assert np.array_equal(alone._one_hot(codes), alone._all_columns(codes))  # a plain space: no network-only cut
    with_cheap = guided._all_columns(codes)  # the cheap objective's value joins the features
    assert with_cheap.shape[1] == alone._all_columns(codes).shape[1] + 1

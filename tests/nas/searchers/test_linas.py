"""linas: predictor-in-the-loop search; its vectorised inner loop and its recorded Kendall τ."""

from __future__ import annotations

import numpy as np
import pytest

from nas.jobs.objectives import Constraint, Objective, ObjectiveError
from nas.jobs.search import search
from search_spaces import get_space

SPACE = get_space("tiny_mbv3")


def accuracy(arch) -> float:
    """Synthetic, expensive: saturating in capacity, with a resolution bonus."""
    codes = SPACE.encode(arch)
    return float(1 - np.exp(-(codes.sum() + 2.0) / 25.0))


def _objectives():
    return [Objective("acc", accuracy, direction="maximize"), Objective("macs", "macs"),
            Objective("sram", "stm32f746.peak_sram_kb")]


def _run(algorithm: str, seed: int):
    return search(SPACE, _objectives(), [Constraint("stm32f746.flash_kb", "<=", 400)], algorithm=algorithm,
                  budget=40, seed=seed, batch_size=8, progress=False)


def test_linas_records_its_predictor_and_is_reproducible():
    first, again = _run("linas", 0), _run("linas", 0)
    assert first.trials().arch_id.tolist() == again.trials().arch_id.tolist()
    report = first.job.predictor_report
    assert report["inner_evaluations"] >= 1000  # thousands of candidates scored on the predictor
    taus = [row["kendall_tau"] for row in report["kendall_tau"]]
    assert taus and all(-1 <= t <= 1 for t in taus) and np.mean(taus) > 0.3
    trials = first.trials()
    assert len(trials[trials.state == "complete"]) == 40 and trials.arch_id.is_unique


def test_linas_beats_random_search_at_equal_budget():
    ref = [0.0, 5e6, 200.0]  # minimised: -acc, MACs, peak SRAM KiB
    linas = [_run("linas", s).hypervolume(ref) for s in (0, 1)]
    random = [_run("random", s).hypervolume(ref) for s in (0, 1)]
    assert np.median(linas) > np.median(random)


def test_linas_needs_an_expensive_objective():
    with pytest.raises(ObjectiveError, match="every objective is cheap"):
        search(SPACE, [Objective("macs", "macs"), Objective("p", "params")], algorithm="linas", budget=4,
               progress=False)


def _small_problem():
    from nas.searchers.base import CheapObjectives
    from search_spaces import Choice, SearchSpace

    space = SearchSpace("grid", [Choice("a", list(range(6))), Choice("b", list(range(6)))])

    def values(codes):
        codes = np.asarray(codes)
        cost = codes.sum(axis=1).astype(float)
        return np.column_stack([np.full(len(codes), np.nan), cost]), np.zeros((len(codes), 0))

    cheap = CheapObjectives(indices=(1,), evaluate=lambda archs: values([space.encode(a) for a in archs]),
                            evaluate_codes=values)
    return space, cheap


def test_the_warm_start_spans_the_cheap_objective_range():
    from nas.searchers.predictor_guided import PredictorGuidedSearcher

    space, cheap = _small_problem()
    for seed in range(3):
        searcher = PredictorGuidedSearcher(space=space, n_objectives=2, seed=seed, cheap=cheap, warmup=6)
        costs = sorted(int(space.encode(a).sum()) for a in searcher.ask(6))
        assert costs[0] == 0 and costs[-1] == 10  # both ends of the cost range (uniform draws rarely are)
        assert len(set(costs)) == 6


def test_spread_scale_is_learnt_from_held_out_proposals_and_reported():
    from nas.searchers.predictor_guided import PredictorGuidedSearcher

    space, cheap = _small_problem()
    searcher = PredictorGuidedSearcher(space=space, n_objectives=2, seed=0, cheap=cheap, warmup=6,
                                       inner_population=16, inner_generations=2)
    rng = np.random.default_rng(0)
    proposed = []
    for _ in range(5):
        archs = searcher.ask(6)
        proposed += [a.arch_id for a in archs]
        codes = np.array([space.encode(a) for a in archs])
        error = 1.0 / (1 + codes[:, 0]) + rng.normal(0, 0.3, len(codes))  # noise the members cannot see
        searcher.tell(archs, np.column_stack([error, codes.sum(axis=1)]))
    scale = searcher.spread_scales[0]
    assert scale > 1.5  # the ensemble's spread understated the error of its own proposals
    assert searcher.report()["spread_scale"]["0"] == pytest.approx(scale, abs=1e-3)
    for aid, by_column in searcher.predictions(proposed).items():  # the stored variance is the widened one
        mean, var_raw, scale_then = searcher._proposed[aid][0]
        assert by_column[0] == pytest.approx((mean, var_raw * scale_then**2))


@pytest.mark.parametrize("acquisition", ["hvi", "front"])
def test_both_acquisitions_propose_unseen_archs_from_the_models(acquisition):
    from nas.searchers.predictor_guided import PredictorGuidedSearcher

    space, cheap = _small_problem()
    searcher = PredictorGuidedSearcher(space=space, n_objectives=2, seed=1, cheap=cheap, warmup=4,
                                       inner_population=16, inner_generations=2, acquisition=acquisition)
    seen = set()
    for round_ in range(5):
        archs = searcher.ask(4)
        ids = {a.arch_id for a in archs}
        assert len(archs) == 4 and not ids & seen
        if round_:  # after the warm design every pick is the models' (none is a random fill)
            assert ids <= set(searcher.predictions(list(ids)))
        seen |= ids
        codes = np.array([space.encode(a) for a in archs])
        searcher.tell(archs, np.column_stack([1.0 / (1 + codes[:, 0]), codes.sum(axis=1)]))


def test_the_warm_design_keeps_to_the_cheap_constraints():
    from nas.searchers.base import CheapObjectives
    from nas.searchers.predictor_guided import PredictorGuidedSearcher

    space, _ = _small_problem()

    def values(codes):
        codes = np.asarray(codes)
        cost = codes.sum(axis=1).astype(float)
        return np.column_stack([np.full(len(codes), np.nan), cost]), (cost - 6.0)[:, None]  # cost <= 6

    cheap = CheapObjectives(indices=(1,), evaluate=lambda archs: values([space.encode(a) for a in archs]),
                            evaluate_codes=values)
    searcher = PredictorGuidedSearcher(space=space, n_objectives=2, n_constraints=1, seed=0, cheap=cheap, warmup=6)
    costs = sorted(int(space.encode(a).sum()) for a in searcher.ask(6))
    assert costs[-1] <= 6 and costs[0] == 0


def test_unknown_acquisition_is_refused():
    from nas.searchers.predictor_guided import PredictorGuidedSearcher

    space, cheap = _small_problem()
    with pytest.raises(ValueError, match="acquisition must be one of hvi, front, got 'ei'"):
        PredictorGuidedSearcher(space=space, n_objectives=2, seed=0, cheap=cheap, acquisition="ei")

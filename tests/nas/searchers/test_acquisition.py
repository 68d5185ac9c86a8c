"""linas's acquisition helpers: hypervolume-improvement batches, the maximin warm start, the spread scale."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.searchers import hypervolume
from nas.searchers._acquisition import farthest_points, greedy_hvi_batch, spread_scale

FRONT = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])


def exact_gain(front: np.ndarray, point: np.ndarray, ref: np.ndarray) -> float:
    return hypervolume(np.vstack([front, point]), ref) - hypervolume(front, ref)


def test_first_pick_is_the_largest_exact_improvement():
    candidates = np.array([[0.45, 0.45], [0.2, 0.2], [0.9, 0.9], [0.6, 0.1]])
    picked = greedy_hvi_batch(candidates, candidates, FRONT, 1, rng=np.random.default_rng(0))
    gains = [exact_gain(FRONT, c, np.array([1.1, 1.1])) for c in candidates]
    assert picked == [int(np.argmax(gains))] == [1]


def test_dominated_candidates_are_never_picked_and_the_batch_stops_when_nothing_adds_volume():
    candidates = np.array([[0.6, 0.6], [1.0, 1.0], [0.2, 0.2]])
    picked = greedy_hvi_batch(candidates, candidates, FRONT, 3, rng=np.random.default_rng(0))
    assert picked == [2]  # after [0.2, 0.2] joins the front, the others add nothing


def test_the_believed_vector_steers_the_next_pick_elsewhere():
    # two near-identical optimistic candidates in one spot and one elsewhere: the believer of the first
    # pick covers its twin, so the second pick goes to the other region
    optimistic = np.array([[0.3, 0.3], [0.31, 0.31], [0.05, 0.8]])
    picked = greedy_hvi_batch(optimistic, optimistic, FRONT, 2, rng=np.random.default_rng(1))
    assert picked[0] == 0 and picked[1] == 2


def test_works_without_a_front_and_in_three_objectives():
    rng = np.random.default_rng(3)
    candidates = rng.random((50, 3))
    picked = greedy_hvi_batch(candidates, candidates, np.zeros((0, 3)), 5, rng=rng)
    assert len(picked) == 5 and len(set(picked)) == 5
    # without a front the box is the candidates' own range, reference 1.1: the first pick holds (nearly) the
    # largest volume alone, and no later pick is weakly dominated by an earlier one (it would add nothing)
    low, high = candidates.min(axis=0), candidates.max(axis=0)
    alone = np.prod(1.1 - (candidates - low) / (high - low), axis=1)
    assert alone[picked[0]] >= 0.97 * alone.max()
    for k, i in enumerate(picked[1:], start=1):
        assert not (candidates[picked[:k]] <= candidates[i]).all(axis=1).any()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(0, 12), st.integers(0, 2**16))
def test_picks_are_distinct_indices_of_non_dominated_optimism(n_candidates, n, seed):
    rng = np.random.default_rng(seed)
    optimistic = rng.random((n_candidates, 2))
    believed = optimistic + rng.random((n_candidates, 2)) * 0.2
    picked = greedy_hvi_batch(optimistic, believed, FRONT, n, rng=rng)
    assert len(picked) <= n and len(set(picked)) == len(picked)
    for i in picked:  # a pick dominated by the front adds nothing and is never chosen
        assert not ((FRONT <= optimistic[i]).all(axis=1)).any()


def test_farthest_points_spreads_over_the_range_and_avoids_fixed_rows():
    X = np.linspace(0, 1, 101)[:, None]
    picked = farthest_points(X, 3, fixed=np.array([[0.0]]), rng=np.random.default_rng(0))
    assert X[picked[0], 0] == 1.0 and X[picked[1], 0] == 0.5
    assert len(set(picked)) == 3
    assert sorted(farthest_points(X[:2], 5, rng=np.random.default_rng(0))) == [0, 1]  # no more than there are
    for seed in range(20):  # identical rows: still distinct indices
        assert sorted(farthest_points(np.ones((3, 1)), 3, rng=np.random.default_rng(seed))) == [0, 1, 2]


def test_spread_scale():
    rng = np.random.default_rng(0)
    stds = np.full(4000, 0.5)
    assert spread_scale(rng.normal(0, 2.0, 4000), stds) == pytest.approx(4.0, rel=0.1)  # 4x understated
    assert spread_scale(rng.normal(0, 0.1, 4000), stds) == 1.0  # never narrower than the ensemble says
    assert spread_scale(np.ones(3), np.ones(3), prior=2.5) == 2.5  # too few held-out pairs

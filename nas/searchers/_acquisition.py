"""How ``linas`` chooses what to evaluate: hypervolume-improvement batches, a space-filling warm start
and the scale that calibrates its ensembles' spread. numpy only.

Contracts (all objectives minimised):

* :func:`greedy_hvi_batch` picks up to ``n`` candidates, one at a time, each maximising the hypervolume
  its *optimistic* vector adds to the current front; after a pick, the candidate's *believed* vector
  (its mean prediction) joins the front ("kriging believer"), so the next pick fills another part of
  the front instead of crowding the same spot. Hypervolume improvements are Monte-Carlo estimates on
  ``n_samples`` uniform points of the box between the lowest values seen and the reference point, in
  objectives normalised by the front's ideal and nadir (any number of objectives, vectorised). Picks
  stop when no candidate adds any volume; the caller fills the rest.
* :func:`farthest_points` is a greedy maximin design: each pick is the row farthest (Euclidean, in
  min-max normalised columns) from every row picked or fixed before.
* :func:`spread_scale` is the factor by which an ensemble's standard deviation understates its error
  on points it had not seen: the 68.3% quantile of ``|y - mean| / std`` over held-out predictions (1 for
  a calibrated Gaussian), at least 1; ``prior`` until ``minimum`` held-out predictions exist.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 256  # candidates compared with the sample cloud at a time


def _dominated_by(points: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``(len(rows), len(points))``: whether each row weakly dominates each point."""
    return (rows[:, None, :] <= points[None, :, :]).all(axis=2)


def greedy_hvi_batch(optimistic: np.ndarray, believed: np.ndarray, front: np.ndarray, n: int, *,
                     rng: np.random.Generator, n_samples: int = 8192) -> list[int]:
    """Indices of up to ``n`` rows of ``optimistic`` (candidates' optimistic objective vectors), in pick
    order; ``believed`` (same shape) are their mean vectors, ``front`` the evaluated non-dominated
    vectors (may be empty). Every input is minimised and finite."""
    optimistic, believed = np.asarray(optimistic, float), np.asarray(believed, float)
    front = np.asarray(front, float).reshape(-1, optimistic.shape[1])
    if not len(optimistic) or n <= 0:
        return []
    anchor = front if len(front) else believed
    ideal, nadir = anchor.min(axis=0), anchor.max(axis=0)
    scale = np.where(nadir > ideal, nadir - ideal, np.maximum(np.abs(nadir), 1.0))
    opt, bel = (optimistic - ideal) / scale, (believed - ideal) / scale
    ref = np.ones(opt.shape[1]) * 1.1 if len(front) else np.maximum(bel.max(axis=0), 0.0) + 0.1
    low = np.minimum(opt.min(axis=0), 0.0)
    cloud = low + rng.random((n_samples, opt.shape[1])) * (ref - low)
    if len(front):
        covered = np.zeros(len(cloud), bool)
        for start in range(0, len(front), _CHUNK):
            covered |= _dominated_by(cloud, (front[start:start + _CHUNK] - ideal) / scale).any(axis=0)
        cloud = cloud[~covered]
    picked: list[int] = []
    alive = np.flatnonzero((opt < ref).all(axis=1))
    while len(picked) < n and len(cloud) and len(alive):
        gains = np.concatenate([_dominated_by(cloud, opt[alive[s:s + _CHUNK]]).sum(axis=1)
                                for s in range(0, len(alive), _CHUNK)])
        best = int(np.argmax(gains))
        if gains[best] == 0:
            break
        choice = int(alive[best])
        picked.append(choice)
        alive = np.delete(alive, best)
        cloud = cloud[~_dominated_by(cloud, bel[choice:choice + 1])[0]]
    return picked


def farthest_points(X: np.ndarray, k: int, *, fixed: np.ndarray | None = None,
                    rng: np.random.Generator) -> list[int]:
    """Indices of ``k`` rows of ``X`` (or all, if fewer) chosen greedily to be far from each other and
    from the rows of ``fixed``; the first pick without ``fixed`` is random."""
    X = np.asarray(X, float)
    if not len(X) or k <= 0:
        return []
    both = X if fixed is None or not len(fixed) else np.vstack([X, fixed])
    low, high = both.min(axis=0), both.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    Z = (X - low) / span
    if fixed is not None and len(fixed):
        distance = np.min(np.linalg.norm(Z[:, None, :] - ((np.asarray(fixed, float) - low) / span)[None], axis=2),
                          axis=1)
        picked = []
    else:
        first = int(rng.integers(len(X)))
        picked, distance = [first], np.linalg.norm(Z - Z[first], axis=1)
        distance[first] = -1.0
    while len(picked) < min(k, len(X)):
        nxt = int(np.argmax(distance))
        picked.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(Z - Z[nxt], axis=1))
        distance[picked] = -1.0
    return picked


def spread_scale(residuals: np.ndarray, stds: np.ndarray, *, prior: float = 1.0, minimum: int = 5) -> float:
    """The held-out 68.3% quantile of ``|residual| / std`` (at least 1; ``prior`` below ``minimum`` pairs)."""
    residuals, stds = np.asarray(residuals, float), np.asarray(stds, float)
    ok = np.isfinite(residuals) & np.isfinite(stds) & (stds > 0)
    if ok.sum() < minimum:
        return float(prior)
    return float(max(1.0, np.quantile(np.abs(residuals[ok]) / stds[ok], 0.683)))

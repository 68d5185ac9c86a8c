"""How good a predictor is: RMSE, the share within ±p%, Spearman's ρ and Kendall's τ.

Every function takes ``y_true`` and ``y_pred`` (1-D, same length, finite) and returns a float.
``ValueError`` names the problem for empty, mismatched or non-finite inputs.
"""

from __future__ import annotations

import numpy as np


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.size == 0 or t.size != p.size:
        raise ValueError(f"y_true and y_pred must be non-empty and equally long, got {t.size} and {p.size}")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("y_true and y_pred must be finite (no NaN or inf)")
    return t, p


def rmse(y_true, y_pred) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def within_pct(y_true, y_pred, pct: float = 10.0) -> float:
    """Share (0..1) of predictions within ``pct`` percent of the true value (``y_true > 0``)."""
    t, p = _pair(y_true, y_pred)
    if (t <= 0).any():
        raise ValueError("within_pct needs positive true values")
    return float(np.mean(np.abs(p - t) <= pct / 100.0 * t))


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank)."""
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(a.size)
    ranks[order] = np.arange(a.size, dtype=np.float64)
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def spearman(y_true, y_pred) -> float:
    """Spearman's rank correlation; 0.0 when either side is constant."""
    t, p = _pair(y_true, y_pred)
    rt, rp = _ranks(t), _ranks(p)
    rt, rp = rt - rt.mean(), rp - rp.mean()
    denom = np.sqrt((rt ** 2).sum() * (rp ** 2).sum())
    return float((rt * rp).sum() / denom) if denom > 0 else 0.0


def kendall_tau(y_true, y_pred) -> float:
    """Kendall's τ-b (ties accounted for); 0.0 when either side is constant. O(n²): n ≤ ~5,000."""
    t, p = _pair(y_true, y_pred)
    dt = np.sign(t[:, None] - t[None, :])
    dp = np.sign(p[:, None] - p[None, :])
    upper = np.triu_indices(t.size, k=1)
    dt, dp = dt[upper], dp[upper]
    denom = np.sqrt(np.count_nonzero(dt) * np.count_nonzero(dp))
    return float((dt * dp).sum() / denom) if denom > 0 else 0.0


def regression_report(y_true, y_pred, *, pct: float = 10.0) -> dict[str, float]:
    """``{"n", "rmse", "within_10pct", "spearman", "kendall_tau"}`` (the key follows ``pct``)."""
    t, p = _pair(y_true, y_pred)
    return {"n": int(t.size), "rmse": rmse(t, p), f"within_{pct:g}pct": within_pct(t, p, pct),
            "spearman": spearman(t, p), "kendall_tau": kendall_tau(t, p)}

"""The thin ask/tell loop and the Pareto helpers every search result goes through.

``run_ask_tell`` is the engine ``nas.search`` wraps: it owns no policy beyond "ask a batch,
evaluate it, tell it, stop at the budget". Evaluation is a plain function
``evaluate(archs) -> (F, G)``, so remote or slow evaluators fit without inverting control.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from search_spaces import ArchConfig

from nas.searchers.base import Searcher, _check_int
from nas.searchers.errors import SearcherError

Evaluate = Callable[[list[ArchConfig]], "tuple[np.ndarray, np.ndarray | None]"]


@dataclass(frozen=True)
class History:
    """Every evaluated arch in ask order with its objectives ``F`` (n, n_objectives; minimised;
    NaN rows are failures) and constraints ``G`` (n, n_constraints; <= 0 is feasible)."""

    archs: tuple[ArchConfig, ...]
    F: np.ndarray
    G: np.ndarray

    def __len__(self) -> int:
        return len(self.archs)

    def pareto_mask(self) -> np.ndarray:
        """Which rows are feasible and non-dominated (see :func:`pareto_mask`)."""
        return pareto_mask(self.F, self.G)


def run_ask_tell(searcher: Searcher, evaluate: Evaluate, *, budget: int, batch_size: int) -> History:
    """Ask batches of at most ``batch_size``, evaluate and tell them until ``budget`` archs are
    evaluated (exactly, unless the space runs out first). ``evaluate`` returns ``(F, G)`` with
    one row per arch (``G`` may be ``None`` without constraints); it reports a failed arch as a
    row of NaN, and anything it raises propagates (archs of that batch stay pending)."""
    budget = _check_int("budget", budget, 0)
    batch_size = _check_int("batch_size", batch_size, 1)
    archs: list[ArchConfig] = []
    Fs: list[np.ndarray] = []
    Gs: list[np.ndarray] = []
    while len(archs) < budget:
        batch = searcher.ask(min(batch_size, budget - len(archs)))
        if not batch:
            break  # the space is exhausted
        F, G = evaluate(list(batch))
        searcher.tell(batch, F, G)  # validates the shapes
        F = np.array(F, dtype=float)
        G = np.zeros((len(batch), 0)) if G is None else np.array(G, dtype=float)
        archs += batch
        Fs.append(F)
        Gs.append(G)
    F_all = np.vstack(Fs) if Fs else np.zeros((0, searcher.n_objectives))
    G_all = np.vstack(Gs) if Gs else np.zeros((0, searcher.n_constraints))
    return History(tuple(archs), F_all, G_all)


def feasible_mask(F: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
    """Rows whose objectives are all finite and whose constraints are all finite and <= 0."""
    F = np.asarray(F, dtype=float)
    if F.ndim != 2:
        raise SearcherError(f"objectives must be a 2-D array (n, n_objectives), got shape {F.shape}")
    ok = np.isfinite(F).all(axis=1)
    if G is not None:
        G = np.asarray(G, dtype=float).reshape(len(F), -1)
        ok &= np.isfinite(G).all(axis=1) & (G <= 0).all(axis=1)
    return ok


def pareto_mask(F: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of rows that are feasible and not dominated by any other feasible row.

    All objectives are minimised. Row ``a`` dominates ``b`` when it is no worse in every
    objective and better in one; rows with identical objectives are all kept. Infeasible and
    failed (non-finite) rows are never on the front.
    """
    ok = feasible_mask(F, G)
    F = np.asarray(F, dtype=float)
    idx = np.flatnonzero(ok)
    mask = np.zeros(len(F), dtype=bool)
    if len(idx) == 0:
        return mask
    P = F[idx]
    keep = np.ones(len(P), dtype=bool)
    order = np.lexsort(P.T[::-1])  # first objective, then the next: dominators come earlier
    for i in order:
        if not keep[i]:
            continue
        dominated = (P[i] <= P).all(axis=1) & (P[i] < P).any(axis=1)
        keep &= ~dominated
    mask[idx[keep]] = True
    return mask


def hypervolume(F: np.ndarray, ref_point: Sequence[float]) -> float:
    """Hypervolume (minimisation) that the points ``F`` dominate up to ``ref_point`` (pymoo ``HV``).

    Rows with non-finite values, and rows not strictly better than ``ref_point`` in every
    objective, add nothing. Pass the feasible front (``F[pareto_mask(F, G)]``) for a search's
    quality; passing dominated rows gives the same value, only slower.
    """
    F = np.asarray(F, dtype=float)
    ref = np.asarray(ref_point, dtype=float).ravel()
    if F.ndim != 2 or F.shape[1] != len(ref):
        raise SearcherError(f"hypervolume: F must have shape (n, {len(ref)}) for that ref_point, got {F.shape}")
    if not np.isfinite(ref).all():
        raise SearcherError(f"hypervolume: ref_point must be finite, got {ref.tolist()}")
    F = F[np.isfinite(F).all(axis=1) & (F < ref).all(axis=1)]
    if len(F) == 0:
        return 0.0
    from pymoo.indicators.hv import HV  # optional heavy import, only here

    return float(HV(ref_point=ref)(F))

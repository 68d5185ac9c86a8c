"""The one ask/tell loop, its termination rule, and the Pareto helpers every search result goes through.

``run_ask_tell`` is the only search loop in hwnas (``nas.search`` drives it too, with an ``evaluate``
that screens, stores and waits for a job's trials): pymoo-style, ``while not termination.done():``
ask a batch, evaluate it, tell it. It owns no policy beyond that; when to stop is a
:class:`Termination` (a budget of counted evaluations, a cap on archs asked, space exhaustion).
Evaluation is a plain function ``evaluate(archs) -> (F, G)`` (or ``(F, G, counted)``), so remote
or slow evaluators fit without inverting control.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from search_spaces import ArchConfig

from nas.searchers.base import Searcher, _check_int
from nas.searchers.errors import SearcherError

#: ``archs -> (F, G)`` or ``archs -> (F, G, counted)`` (see :func:`run_ask_tell`).
Evaluate = Callable[[list[ArchConfig]], tuple]


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


class Termination:
    """When the loop stops (like pymoo's ``Termination``): once ``evaluated >= budget`` (reason
    ``"budget"``), once ``asked >= max_asked`` when a cap is given (``"max_asked"``), or once ``ask``
    returned nothing (``"exhausted"``). ``evaluated`` and ``asked`` may start above 0 (a resumed run)."""

    def __init__(self, budget: int, *, max_asked: int | None = None, evaluated: int = 0, asked: int = 0) -> None:
        self.budget = _check_int("budget", budget, 0)
        self.max_asked = None if max_asked is None else _check_int("max_asked", max_asked, 0)
        self.evaluated = _check_int("evaluated", evaluated, 0)
        self.asked = _check_int("asked", asked, 0)
        self.exhausted = False

    def __repr__(self) -> str:
        return (f"Termination(budget={self.budget}, max_asked={self.max_asked}, evaluated={self.evaluated}, "
                f"asked={self.asked}, reason={self.reason!r})")

    @property
    def reason(self) -> str | None:
        """Why the loop stops (None while it goes on)."""
        if self.evaluated >= self.budget:
            return "budget"
        if self.max_asked is not None and self.asked >= self.max_asked:
            return "max_asked"
        return "exhausted" if self.exhausted else None

    def done(self) -> bool:
        return self.reason is not None

    def batch(self, batch_size: int) -> int:
        """How many archs to ask next: at most ``batch_size``, never past the budget."""
        return min(batch_size, self.budget - self.evaluated)

    def update(self, *, asked: int, evaluated: int) -> None:
        """Count one told batch: ``asked`` archs, of which ``evaluated`` count against the budget."""
        self.asked += asked
        self.evaluated += evaluated


def run_ask_tell(searcher: Searcher, evaluate: Evaluate, *, budget: int | None = None, batch_size: int,
                 termination: Termination | None = None,
                 callback: Callable[[Termination], None] | None = None) -> History:
    """Ask batches of at most ``batch_size``, evaluate and tell them until ``termination`` is done
    (default: ``Termination(budget)``, i.e. exactly ``budget`` archs unless the space runs out first;
    give ``budget`` or ``termination``). ``evaluate`` returns ``(F, G)`` with one row per arch (``G``
    may be ``None`` without constraints), or ``(F, G, counted)`` where the boolean ``counted`` marks
    the rows that count against the budget (default: every row); it reports a failed arch as a row of
    NaN, and anything it raises propagates (archs of that batch stay pending). ``callback(termination)``
    runs after each told batch. Returns the archs evaluated by this call."""
    if termination is None:
        if budget is None:
            raise ValueError("run_ask_tell needs budget or termination")
        termination = Termination(budget)
    elif budget is not None:
        raise ValueError(f"give run_ask_tell budget or termination, not both (budget={budget!r})")
    batch_size = _check_int("batch_size", batch_size, 1)
    archs: list[ArchConfig] = []
    Fs: list[np.ndarray] = []
    Gs: list[np.ndarray] = []
    while not termination.done():
        batch = searcher.ask(termination.batch(batch_size))
        if not batch:
            termination.exhausted = True
            break
        F, G, counted = _unpack(evaluate(list(batch)), len(batch))
        searcher.tell(batch, F, G)  # validates the shapes
        archs += batch
        Fs.append(np.array(F, dtype=float))
        Gs.append(np.zeros((len(batch), 0)) if G is None else np.array(G, dtype=float))
        termination.update(asked=len(batch), evaluated=int(np.count_nonzero(counted)))
        if callback is not None:
            callback(termination)
    F_all = np.vstack(Fs) if Fs else np.zeros((0, searcher.n_objectives))
    G_all = np.vstack(Gs) if Gs else np.zeros((0, searcher.n_constraints))
    return History(tuple(archs), F_all, G_all)


def _unpack(evaluated, n: int):
    """``(F, G, counted)`` from what ``evaluate`` returned (``counted`` defaults to every row)."""
    if not isinstance(evaluated, (tuple, list)) or len(evaluated) not in (2, 3):
        raise SearcherError(f"evaluate must return (F, G) or (F, G, counted), got {type(evaluated).__name__}")
    if len(evaluated) == 2:
        return (*evaluated, np.ones(n, dtype=bool))
    F, G, counted = evaluated
    counted = np.asarray(counted, dtype=bool).ravel()
    if len(counted) != n:
        raise SearcherError(f"evaluate: counted must have one entry per arch ({n}), got {len(counted)}")
    return F, G, counted


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

"""``Searcher``: the ask/tell contract every search algorithm keeps.

Contract:
- A searcher proposes architectures of one ``SearchSpace`` for a problem with
  ``n_objectives`` objectives, all **minimised** (callers negate the ones they maximise), and
  ``n_constraints`` inequality constraints, feasible when **every value is <= 0**.
- ``ask(n)`` returns at most ``n`` canonical archs (``space.canonicalize(a) == a``) whose
  ``arch_id`` this searcher has never returned, been told or been warm-started with. Two codes
  that build the same network share an ``arch_id`` and count as one arch. It returns fewer
  than ``n`` only when no unseen arch is left (for spaces of more than ``ENUMERATE_LIMIT`` raw
  codes, where exhaustion cannot be checked by enumeration: when a bounded number of uniform
  draws all hit seen archs). It never loops without bound: an algorithm that keeps proposing
  seen archs gets a bounded number of retries, then the rest are unseen uniform samples drawn
  with the searcher's own ``numpy.random.Generator``.
- ``tell(archs, objectives, constraints)`` reports the values of archs returned by ``ask``
  and not told yet, each exactly once, in any grouping and order (the i-th row belongs to
  ``archs[i]``). ``objectives`` has shape ``(len(archs), n_objectives)`` and ``constraints``
  ``(len(archs), n_constraints)`` (``None`` when there are none). A row with a non-finite value
  (NaN for a failed evaluation, or inf) is a *failed* evaluation: it is never feasible and
  algorithms see it as infeasible and worst (see ``Searcher._finite``).
- ``warm_start(archs, objectives, constraints)`` feeds history evaluated elsewhere (a resumed
  job's store). It may be called at any time; those archs are never asked afterwards.
  A repeated ``arch_id`` keeps its first values; archs already told are skipped.
- ``ask``, ``tell`` and ``warm_start`` may interleave freely; archs asked and not yet told are
  *pending*. Population-based adapters tell their algorithm a generation only once all its
  members have values, so values that never come back stall that generation (the searcher then
  keeps answering ``ask`` with other proposals or unseen random samples).
- Same seed, same calls with the same told values: the same ``ask`` sequence, on any machine.
  The only randomness is ``seed`` (split into independent streams for the searcher's own
  Generator and the wrapped algorithm).
- Only the searcher mutates its state; the arrays passed to ``tell`` are copied.

Subclasses implement two hooks, like optuna's ``BaseSampler``:
- ``_ask(n)``: propose up to ``n`` archs, registering each with ``_claim`` (which refuses seen
  ones) and returning exactly the claimed ones. The base class tops up the rest with unseen
  random samples.
- ``_tell(evaluations)``: learn from told evaluations (also called by ``warm_start`` through
  ``_warm_start``, so an adapter must accept archs it never proposed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from search_spaces import ArchConfig, InvalidArchError, SearchSpace

from nas.searchers.errors import SearcherError

#: Spaces with at most this many raw codes are enumerated (in a seeded random order) once
#: random draws stop finding unseen archs, so exhaustion is detected exactly.
ENUMERATE_LIMIT = 1 << 20


@dataclass(frozen=True)
class Evaluation:
    """One told arch: values exactly as told (``failed`` when any of them is not finite)."""

    arch: ArchConfig
    objectives: np.ndarray  # (n_objectives,) float
    constraints: np.ndarray  # (n_constraints,) float
    failed: bool


@dataclass(frozen=True)
class CheapObjectives:
    """What a caller can compute exactly and quickly, offered to searchers that model the rest (``linas``).

    ``indices``: the objective columns that are cheap. ``evaluate(archs) -> (F, G)``: ``F`` holds those
    columns (minimised; other columns are ignored), ``G`` every constraint that is cheap (0.0 for the
    others). Optional, vectorised over rows of canonical integer codes: ``evaluate_codes(codes) ->
    (F, G)`` (the same values) and ``canonical_codes(codes) -> codes`` (raw rows to canonical ones).
    ``network_only``: expensive objective columns that depend on the network part alone (a co-design
    space's accuracy), so models of them should not see the accelerator's settings."""

    indices: tuple[int, ...]
    evaluate: Callable
    evaluate_codes: Callable | None = None
    canonical_codes: Callable | None = None
    network_only: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0 for i in self.indices):
            raise ValueError(f"CheapObjectives.indices must be objective columns (integers >= 0), got {self.indices!r}")
        for name in ("evaluate", "evaluate_codes", "canonical_codes"):
            value = getattr(self, name)
            if not callable(value) and not (value is None and name != "evaluate"):
                raise ValueError(f"CheapObjectives.{name} must be callable, got {value!r}")


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Searcher(ABC):
    """Base class of ask/tell searchers; see the module docstring for the contract."""

    #: The registry name, set by each concrete class (used in messages).
    name: str = "searcher"

    def __init__(self, *, space: SearchSpace, n_objectives: int, n_constraints: int = 0, seed: int) -> None:
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space must be a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.n_objectives = _check_int("n_objectives", n_objectives, 1)
        self.n_constraints = _check_int("n_constraints", n_constraints, 0)
        self.seed = _check_int("seed", seed, 0)
        self._rng = np.random.default_rng([self.seed, 0])  # the searcher's own stream
        self._pending: dict[str, ArchConfig] = {}
        self._told: dict[str, Evaluation] = {}
        self._n_asked = 0
        self._worst_f = np.full(self.n_objectives, -np.inf)
        self._worst_g = np.full(self.n_constraints, -np.inf)
        self._walk: np.ndarray | None = None  # seeded enumeration order, built on first need
        self._walk_pos = 0
        self._replay = 0  # warm-started archs the seeded draws may still hit (see _draw_unseen)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(space={self.space.name!r}, n_objectives={self.n_objectives}, "
            f"n_constraints={self.n_constraints}, seed={self.seed})"
        )

    # ------------------------------------------------------------------- public
    def ask(self, n: int) -> list[ArchConfig]:
        """Up to ``n`` canonical archs never seen by this searcher (fewer only when none is left)."""
        n = _check_int("n", n, 0)
        if n == 0:
            return []
        before = len(self._pending)
        archs = list(self._ask(n))
        if len(archs) > n or len(self._pending) - before != len(archs):
            raise RuntimeError(f"{type(self).__name__}._ask broke its contract: it must return the archs it claimed")
        if len(archs) < n:
            archs += self._draw_unseen(n - len(archs))
        self._n_asked += len(archs)
        return archs

    def tell(self, archs: Sequence[ArchConfig], objectives, constraints=None) -> None:
        """Report values of pending archs (rows in the order of ``archs``); NaN rows are failures."""
        rows = self._check_rows(archs, objectives, constraints, "tell")
        seen: set[str] = set()
        for arch, _, _ in rows:
            if arch.arch_id in seen:
                raise SearcherError(f"tell: arch {arch.arch_id} appears twice in one call")
            seen.add(arch.arch_id)
            if arch.arch_id not in self._pending:
                state = "was already told" if arch.arch_id in self._told else "was never asked by this searcher"
                raise SearcherError(f"tell: arch {arch.arch_id} {state}; use warm_start for outside history")
        evaluations = [self._record(self._pending.pop(arch.arch_id), f, g) for arch, f, g in rows]
        self._tell(evaluations)

    def warm_start(self, archs: Sequence[ArchConfig], objectives, constraints=None) -> None:
        """Feed history evaluated elsewhere; ``ask`` never returns these archs afterwards."""
        rows = self._check_rows(archs, objectives, constraints, "warm_start")
        evaluations = []
        for arch, f, g in rows:
            if arch.arch_id in self._pending:
                raise SearcherError(
                    f"warm_start: arch {arch.arch_id} was asked by this searcher and awaits tell; tell it instead"
                )
            if arch.arch_id in self._told:
                continue
            evaluations.append(self._record(arch, f, g))
        self._replay += len(evaluations)
        if evaluations:
            self._warm_start(evaluations)

    @property
    def n_asked(self) -> int:
        """Archs returned by ``ask`` so far."""
        return self._n_asked

    @property
    def n_told(self) -> int:
        """Archs with values (told or warm-started)."""
        return len(self._told)

    @property
    def pending(self) -> tuple[ArchConfig, ...]:
        """Archs asked and not told yet, in ask order."""
        return tuple(self._pending.values())

    def is_seen(self, arch: ArchConfig) -> bool:
        """Whether ``ask`` will never return ``arch`` (asked, told or warm-started already)."""
        aid = self.space.canonicalize(arch).arch_id
        return aid in self._pending or aid in self._told

    def report(self) -> dict | None:
        """A JSON-able summary of the searcher's internals for the job to record (e.g. ``linas``'s
        predictor quality per refit); ``None`` (the default) when there is nothing to record."""
        return None

    def predictions(self, arch_ids: Sequence[str]) -> dict[str, dict[int, tuple[float, float]]]:
        """Held-out predictions of a model-guided searcher (``linas``): for those of ``arch_ids`` that
        ``ask`` returned after predicting them, ``{arch_id: {objective column: (mean, var)}}`` as
        predicted *before* the arch was evaluated, in the searcher's minimised units. ``{}`` (the
        default) for searchers without a model; the job stores them beside the measured values."""
        return {}

    # -------------------------------------------------------------------- hooks
    @abstractmethod
    def _ask(self, n: int) -> list[ArchConfig]:
        """Propose up to ``n`` archs, each registered with ``_claim``; return the claimed ones."""

    @abstractmethod
    def _tell(self, evaluations: list[Evaluation]) -> None:
        """Learn from told values (possibly of archs this adapter never proposed)."""

    def _warm_start(self, evaluations: list[Evaluation]) -> None:
        """Learn from outside history; by default the same as ``_tell``."""
        self._tell(evaluations)

    # ------------------------------------------------------- helpers for adapters
    def _claim(self, arch: ArchConfig) -> bool:
        """Register canonical ``arch`` as pending if unseen; False (and nothing changes) if seen."""
        aid = arch.arch_id
        if aid in self._pending or aid in self._told:
            return False
        self._pending[aid] = arch
        return True

    def _status(self, arch_id: str) -> str:
        """``"new"``, ``"pending"`` (asked, not told) or ``"told"``."""
        if arch_id in self._told:
            return "told"
        return "pending" if arch_id in self._pending else "new"

    def _arch(self, codes) -> ArchConfig:
        """The canonical arch of integer codes (one per setting)."""
        return self.space.canonicalize(self.space.decode(codes))

    def _finite(self, arch_id: str) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(objectives, constraints, failed)`` of a told arch, with finite stand-ins for a failure.

        A failed evaluation gets, per objective, the worst (largest) finite value told so far
        (0.0 where none is known yet) and, per constraint, the worst violation told so far but at
        least 1.0, so it is infeasible. The stand-ins are computed when asked for, so they follow
        the worst values as they grow.
        """
        ev = self._told[arch_id]
        if not ev.failed:
            return ev.objectives, ev.constraints, False
        f = np.where(np.isfinite(self._worst_f), self._worst_f, 0.0)
        g = np.maximum(np.where(np.isfinite(self._worst_g), self._worst_g, 1.0), 1.0)
        return f, g, True

    def _child_seed(self, stream: int) -> int:
        """A seed for a wrapped algorithm, independent of the searcher's own Generator."""
        return int(np.random.default_rng([self.seed, stream]).integers(2**31 - 1))

    def _draw_unseen(self, k: int) -> list[ArchConfig]:
        """Up to ``k`` unseen canonical archs, claimed: bounded uniform draws, then enumeration."""
        out: list[ArchConfig] = []
        # a resumed searcher replays its seed's draws, which hit the warm-started archs first: those
        # misses are expected (``_replay`` of them), on top of the usual allowance for collisions
        misses, max_misses = 0, 16 + 4 * k + self._replay
        while len(out) < k and misses < max_misses:
            arch = self.space.sample(self._rng)
            if self._claim(arch):
                out.append(arch)
            else:
                misses += 1
        self._replay = max(0, self._replay - misses)
        if len(out) < k and self.space.size <= ENUMERATE_LIMIT:
            if self._walk is None:
                self._walk = self._rng.permutation(self.space.size)
            cards = self.space.cardinalities
            while len(out) < k and self._walk_pos < len(self._walk):
                codes = np.unravel_index(int(self._walk[self._walk_pos]), cards)
                self._walk_pos += 1
                arch = self._arch([int(c) for c in codes])
                if self._claim(arch):
                    out.append(arch)
        return out

    # ------------------------------------------------------------------ private
    def _record(self, arch: ArchConfig, f: np.ndarray, g: np.ndarray) -> Evaluation:
        failed = not (np.isfinite(f).all() and np.isfinite(g).all())
        ev = Evaluation(arch, f, g, failed)
        self._told[arch.arch_id] = ev
        if not failed:
            self._worst_f = np.maximum(self._worst_f, f)
            self._worst_g = np.maximum(self._worst_g, g)
        return ev

    def _check_rows(self, archs, objectives, constraints, what: str) -> list[tuple[ArchConfig, np.ndarray, np.ndarray]]:
        if isinstance(archs, ArchConfig):
            raise SearcherError(f"{what}: pass a list of archs, not a single ArchConfig")
        archs = list(archs)
        n = len(archs)
        try:
            F = np.array(objectives, dtype=float)
        except (TypeError, ValueError):
            raise SearcherError(f"{what}: objectives must be a numeric array, got {type(objectives).__name__}") from None
        if F.shape != (n, self.n_objectives):
            raise SearcherError(
                f"{what}: objectives must have shape ({n}, {self.n_objectives}) for {n} archs, got {F.shape}"
            )
        if constraints is None:
            if self.n_constraints:
                raise SearcherError(
                    f"{what}: this searcher has {self.n_constraints} constraint(s); "
                    f"pass constraints of shape ({n}, {self.n_constraints})"
                )
            G = np.zeros((n, 0))
        else:
            try:
                G = np.array(constraints, dtype=float)
            except (TypeError, ValueError):
                raise SearcherError(
                    f"{what}: constraints must be a numeric array, got {type(constraints).__name__}"
                ) from None
            if G.shape != (n, self.n_constraints):
                raise SearcherError(
                    f"{what}: constraints must have shape ({n}, {self.n_constraints}) for {n} archs, got {G.shape}"
                )
        rows = []
        for i, arch in enumerate(archs):
            try:
                canonical = self.space.canonicalize(arch)
            except InvalidArchError as err:
                raise SearcherError(f"{what}: arch #{i} does not fit space {self.space.name!r}: {err}") from None
            rows.append((canonical, F[i].copy(), G[i].copy()))
        return rows

"""The registry of searchers: name -> factory. Registering imports neither pymoo nor optuna:
each factory imports its adapter module when it is first called."""

from __future__ import annotations

import importlib
from typing import Callable

from search_spaces.registry import Registry

from nas.searchers.base import CheapObjectives, Searcher
from nas.searchers.errors import UnknownSearcherError

SEARCHERS: Registry[Searcher] = Registry("searcher", UnknownSearcherError)
_USES_CHEAP: set[str] = set()

#: The name that asks for a searcher chosen by the job's objectives (:func:`resolve_searcher`).
AUTO_SEARCHER = "auto"
#: What ``auto`` resolves to for a job whose objectives are all cheap (and in nested co-design).
DEFAULT_SEARCHER = "nsga2"
#: What ``auto`` resolves to for a job with an expensive objective: the predictor-in-the-loop searcher,
#: which needed the fewest expensive evaluations to the front in
#: experiments/benchmarks/search_quality.py (real-accuracy tiny_mbv3 table).
DEFAULT_EXPENSIVE_SEARCHER = "linas"


def register_searcher(name: str, factory: Callable[..., Searcher], *, uses_cheap: bool = False) -> None:
    """Register ``factory(*, space, n_objectives, n_constraints, seed, **options) -> Searcher``.
    ``uses_cheap``: the factory also takes ``cheap`` (a :class:`CheapObjectives` or None)."""
    if name == AUTO_SEARCHER:
        raise ValueError(f"{AUTO_SEARCHER!r} is reserved: it asks for a searcher chosen by the job's objectives")
    SEARCHERS.register(name, factory)
    if uses_cheap:
        _USES_CHEAP.add(name)


def create_searcher(name: str, *, cheap: CheapObjectives | None = None, **kwargs) -> Searcher:
    """A new searcher; keyword arguments go to its constructor (``space``, ``n_objectives``,
    ``n_constraints``, ``seed`` and the algorithm's options). Every searcher may be offered ``cheap``
    (the objectives the caller computes exactly); those registered with ``uses_cheap`` get it, the
    others ignore it."""
    if name in _USES_CHEAP:
        kwargs["cheap"] = cheap
    return SEARCHERS.create(name, **kwargs)


def searcher_uses_cheap(name: str) -> bool:
    """Whether ``create_searcher(name, cheap=...)`` uses its ``cheap`` hook (so it is worth building)."""
    return name in _USES_CHEAP


def resolve_searcher(name: str, *, expensive: bool, nested: bool = False) -> str:
    """The searcher to create for ``name``: any name but ``auto`` unchanged (unknown ones fail later, in
    :func:`create_searcher`); ``auto`` gives :data:`DEFAULT_EXPENSIVE_SEARCHER` when an objective is
    ``expensive``, else :data:`DEFAULT_SEARCHER`, which nested co-design (``nested``, whose outer loop
    picks an accelerator per inner candidate) always gets."""
    if name != AUTO_SEARCHER:
        return name
    return DEFAULT_EXPENSIVE_SEARCHER if expensive and not nested else DEFAULT_SEARCHER


def list_searchers() -> list[str]:
    return SEARCHERS.names()


def lazy_factory(module: str, cls: str) -> Callable[..., Searcher]:
    """A factory that imports ``module`` (an adapter with heavy imports) only when called."""

    def factory(**kwargs) -> Searcher:
        return getattr(importlib.import_module(module), cls)(**kwargs)

    factory.__name__ = factory.__qualname__ = f"create_{cls}"
    factory.__doc__ = f"``{module}.{cls}(**kwargs)``, imported on first use."
    return factory

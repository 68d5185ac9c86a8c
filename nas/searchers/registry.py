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

#: The searcher ``create_searcher`` callers should use when the user names none.
DEFAULT_SEARCHER = "nsga2"


def register_searcher(name: str, factory: Callable[..., Searcher], *, uses_cheap: bool = False) -> None:
    """Register ``factory(*, space, n_objectives, n_constraints, seed, **options) -> Searcher``.
    ``uses_cheap``: the factory also takes ``cheap`` (a :class:`CheapObjectives` or None)."""
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


def list_searchers() -> list[str]:
    return SEARCHERS.names()


def lazy_factory(module: str, cls: str) -> Callable[..., Searcher]:
    """A factory that imports ``module`` (an adapter with heavy imports) only when called."""

    def factory(**kwargs) -> Searcher:
        return getattr(importlib.import_module(module), cls)(**kwargs)

    factory.__name__ = factory.__qualname__ = f"create_{cls}"
    factory.__doc__ = f"``{module}.{cls}(**kwargs)``, imported on first use."
    return factory

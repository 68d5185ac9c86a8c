"""The registry of search spaces: name → factory. Factories are cheap and do no I/O."""

from __future__ import annotations

from typing import Callable

from search_spaces.errors import DuplicateNameError, UnknownSpaceError
from search_spaces.space import SearchSpace

SpaceFactory = Callable[..., SearchSpace]
_FACTORIES: dict[str, SpaceFactory] = {}


def register_space(name: str, factory: SpaceFactory) -> None:
    """Register ``factory(**kwargs) -> SearchSpace`` under ``name``; a taken name raises."""
    if name in _FACTORIES:
        raise DuplicateNameError(f"a search space named {name!r} is already registered")
    _FACTORIES[name] = factory


def get_space(name: str, **kwargs) -> SearchSpace:
    """A new instance of the registered space ``name`` (keyword options go to its factory)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise UnknownSpaceError(f"unknown space {name!r}; known spaces: {', '.join(list_spaces())}") from None
    return factory(**kwargs)


def list_spaces() -> list[str]:
    return sorted(_FACTORIES)

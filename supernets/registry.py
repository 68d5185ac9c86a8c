"""The registry of supernets: name → factory (cheap, no I/O, no downloads)."""

from __future__ import annotations

from typing import Callable

from search_spaces import DuplicateNameError, UnknownNameError
from supernets.base import Supernet

SupernetFactory = Callable[..., Supernet]
_FACTORIES: dict[str, SupernetFactory] = {}


class UnknownSupernetError(UnknownNameError):
    """``create_supernet`` was given a name that is not registered."""


def register_supernet(name: str, factory: SupernetFactory) -> None:
    if name in _FACTORIES:
        raise DuplicateNameError(f"a supernet named {name!r} is already registered")
    _FACTORIES[name] = factory


def create_supernet(name: str, **kwargs) -> Supernet:
    """A freshly initialised supernet; keyword options go to its factory."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise UnknownSupernetError(
            f"unknown supernet {name!r}; known supernets: {', '.join(list_supernets())}"
        ) from None
    return factory(**kwargs)


def list_supernets() -> list[str]:
    return sorted(_FACTORIES)

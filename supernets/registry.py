"""The registry of supernets: name → factory (cheap, no I/O, no downloads)."""

from __future__ import annotations

from typing import Callable

from search_spaces import UnknownNameError
from search_spaces.registry import Registry
from supernets.base import Supernet


class UnknownSupernetError(UnknownNameError):
    """``create_supernet`` was given a name that is not registered."""


SUPERNETS: Registry[Supernet] = Registry("supernet", UnknownSupernetError)


def register_supernet(name: str, factory: Callable[..., Supernet]) -> None:
    SUPERNETS.register(name, factory)


def create_supernet(name: str, **kwargs) -> Supernet:
    """A freshly initialised supernet; keyword options go to its factory."""
    return SUPERNETS.create(name, **kwargs)


def list_supernets() -> list[str]:
    return SUPERNETS.names()

"""Name → factory registries (one per kind: spaces, supernets, profiles, searchers).

Factories are cheap and do no I/O; nothing heavy is registered at import time. A taken name
raises ``DuplicateNameError``; an unknown name raises the registry's error listing valid names.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from search_spaces.errors import DuplicateNameError, UnknownNameError, UnknownSpaceError
from search_spaces.space import SearchSpace

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories of one kind (``kind`` names it in messages, e.g. "space")."""

    def __init__(self, kind: str, unknown_error: type[UnknownNameError] = UnknownNameError) -> None:
        self.kind = kind
        self.unknown_error = unknown_error
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T]) -> None:
        if name in self._factories:
            raise DuplicateNameError(f"a {self.kind} named {name!r} is already registered")
        self._factories[name] = factory

    def create(self, name: str, **kwargs) -> T:
        """A new instance from the factory registered as ``name``; keyword options go to it."""
        try:
            factory = self._factories[name]
        except KeyError:
            raise self.unknown_error(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}"
            ) from None
        return factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._factories)


SPACES: Registry[SearchSpace] = Registry("space", UnknownSpaceError)


def register_space(name: str, factory: Callable[..., SearchSpace]) -> None:
    """Register ``factory(**kwargs) -> SearchSpace`` under ``name``; a taken name raises."""
    SPACES.register(name, factory)


def get_space(name: str, **kwargs) -> SearchSpace:
    """A new instance of the registered space ``name`` (keyword options go to its factory).

    ``"<name>+q"`` and ``"<name>+q(int8,fp32)"`` give the registered space with a searched
    quantization policy (see ``search_spaces.quantization``); ``"<name>+hw(<device>)"`` adds the
    device's accelerator knobs (``search_spaces.accelerator``), on either of those; and
    ``"tasks(<task>=<space>;...)"`` several co-design spaces on one device (``search_spaces.multitask``)."""
    from search_spaces.accelerator import resolve_accelerator_space, split_accelerator_name
    from search_spaces.multitask import MultiTaskSpace, split_multitask_name
    from search_spaces.quantization import QuantizedSpace, split_quantized_name

    tasks = split_multitask_name(name) if isinstance(name, str) else None
    if tasks is not None:
        try:
            return MultiTaskSpace({task: get_space(part, **kwargs) for task, part in tasks})
        except ValueError as err:
            raise UnknownSpaceError(f"space {name!r}: {err}") from None
    codesign = split_accelerator_name(name) if isinstance(name, str) else None
    if codesign is not None:
        return resolve_accelerator_space(get_space(codesign[0], **kwargs), codesign[1])
    composed = split_quantized_name(name) if isinstance(name, str) else None
    if composed is None:
        return SPACES.create(name, **kwargs)
    base, precisions = composed
    try:
        return QuantizedSpace(SPACES.create(base, **kwargs), precisions=precisions)
    except ValueError as err:
        raise UnknownSpaceError(f"space {name!r}: {err}") from None


def list_spaces() -> list[str]:
    return SPACES.names()

"""``ArchConfig``: an immutable choice of every setting in one search space."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Mapping

from search_spaces.choice import Scalar


def stable_hash(space_name: str, values: Mapping[str, Scalar]) -> str:
    """16 hex digits of SHA-256 over a canonical JSON form; stable across runs and machines."""
    blob = json.dumps({"space": space_name, "arch": dict(values)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ArchConfig:
    """One architecture of one space: ``(param, value)`` pairs in the space's parameter order.

    Build it with ``space.parse``, ``space.sample`` or ``space.decode``, which validate it and
    fill in ``arch_id``. Equality and hashing compare the settings exactly as given; two configs
    that differ only in settings the network ignores are different configs with the *same*
    ``arch_id`` (the hash of the canonical form). Compare networks by ``arch_id``.
    """

    space: str
    items: tuple[tuple[str, Scalar], ...]
    arch_id: str = field(compare=False)

    @cached_property
    def _values(self) -> dict[str, Scalar]:
        return dict(self.items)

    def __getitem__(self, name: str) -> Scalar:
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(f"{name!r} is not a setting of space {self.space!r}") from None

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.items)

    def to_dict(self) -> dict[str, Scalar]:
        """``{param: value}`` in parameter order; ``space.parse`` accepts it back."""
        return dict(self.items)

    def to_json(self) -> str:
        """Compact JSON of :meth:`to_dict`; ``space.parse(json.loads(s))`` round-trips it."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

"""Frozen result records whose ``to_json()`` is the dict of a report file (``report.json`` and the like).

Contract: a subclass is a ``@dataclass(frozen=True, kw_only=True)`` whose fields are the report's
top-level keys, in the file's order, holding its JSON values (nested sections stay plain dicts and
lists: treat them as read-only). ``to_json()`` returns a fresh deep copy of them in field order;
a field declared with ``metadata=OMIT_NONE`` is left out when it is ``None`` (a key the report only
has in some cases). Dict-style reads (``result[key]``, ``.get``, ``in``) keep code written against the
old dict returns working. ``from_json(data)`` is the inverse; a missing or unknown key raises the class's
``_ERROR`` (a ``NASError``) naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar, Mapping

from search_spaces import NASError

OMIT_NONE = {"omit_none": True}  # dataclasses.field(metadata=OMIT_NONE): no key when the value is None


class ReportRecord:
    """Base of the frozen result records (module docstring)."""

    _ERROR: ClassVar[type[Exception]] = NASError

    def to_json(self) -> dict[str, Any]:
        """The report file's dict: every field in order, deep-copied; ``OMIT_NONE`` fields only when set."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)
                if not (f.metadata.get("omit_none") and getattr(self, f.name) is None)}

    def __getitem__(self, key: str) -> Any:
        """``result["formats"]``: dict-style reads of the report, as when these functions returned dicts."""
        data = self.to_json()
        if key not in data:
            raise KeyError(key)
        return data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """``result.get("tuning")``: like ``dict.get`` on :meth:`to_json`."""
        return self.to_json().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]):
        """The record of a report dict as :meth:`to_json` writes it; ``_ERROR`` names a missing or unknown key."""
        if not isinstance(data, Mapping):
            raise cls._ERROR(f"a {cls.__name__} report must be a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        missing = [name for name, f in known.items() if name not in data and not f.metadata.get("omit_none")]
        if unknown or missing:
            raise cls._ERROR(f"not a {cls.__name__} report: missing keys {missing}, unknown keys {unknown}")
        return cls(**{name: copy.deepcopy(value) for name, value in data.items()})

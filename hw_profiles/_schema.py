"""The schema machinery of device profiles (:mod:`hw_profiles.profile`): a spec field declares its valid values
beside it, ``valid(rule)`` (``field(metadata={"valid": rule})``, the rule a :class:`Bounds` for a number, a
:class:`Text` for a string, a :class:`Table` for a table of numbers), and :func:`check_field` is the one place
that checks a value against its field's type and declaration. Every fault is a one-line :class:`ProfileError`
naming ``where`` (the file and the key), the expected type or the valid range."""

from __future__ import annotations

import collections.abc
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Mapping

from search_spaces import NASError
from search_spaces._checks import is_finite_number, shown


class ProfileError(NASError, ValueError):
    """A profile file is missing, unreadable or breaks the schema."""


def _num(x: float) -> str:
    """``x`` short (``1e+15``, ``1e-06``, ``4096``) where that is exact, else in full (``1099511627776``)."""
    short = f"{x:g}"
    return short if float(short) == x or not float(x).is_integer() else str(int(x))


@dataclass(frozen=True)
class Bounds:
    """The valid values of a numeric key: finite, ``low <= v <= high`` (``low < v`` when ``low_open``);
    ``unit`` names what the number counts. Whether it is an int or a float is the field's type."""

    low: float
    high: float
    low_open: bool = False
    unit: str = ""

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}]"

    def check(self, value, where: str) -> None:
        unit = f" ({self.unit})" if self.unit else ""
        if not (is_finite_number(value) and (value > self.low if self.low_open else value >= self.low)):
            if isinstance(value, int):
                floor = "a positive integer" if self.low == 1 else f"an integer >= {_num(self.low)}"
            elif (self.low > 0 or self.low_open and self.low == 0) and not value > 0:  # NaN too
                floor = "a finite number > 0"
            else:
                floor = f"a finite number {'>' if self.low_open else '>='} {_num(self.low)}"
            raise ProfileError(f"{where} must be {floor}{unit}, got {shown(value)}; valid range {self}")
        if value > self.high:
            raise ProfileError(f"{where} must be at most {_num(self.high)}{unit}, got {shown(value)}; "
                               f"valid range {self}")


@dataclass(frozen=True)
class Text:
    """The valid values of a string key: one of ``choices``, or matching ``pattern`` (described by
    ``what``), at most ``max_len`` characters. The default: one line without control characters."""

    choices: tuple[str, ...] = ()
    pattern: str = r"[^\x00-\x1f\x7f]*"
    what: str = "one line of text (no control characters)"
    max_len: int = 256

    def check(self, value: str, where: str) -> None:
        if self.choices:
            if value not in self.choices:
                raise ProfileError(f"{where} must be one of {list(self.choices)}, got {shown(value)}")
            return
        if len(value) > self.max_len:
            raise ProfileError(f"{where} must be at most {self.max_len} characters, got {len(value)}")
        if not re.fullmatch(self.pattern, value):
            raise ProfileError(f"{where} must be {self.what}, got {shown(value)}")


@dataclass(frozen=True)
class Table:
    """The valid values of a table of numbers: keys from ``keys`` (all of them when ``complete``, else
    at least those of ``required``; ``key_word`` names what a key is), each value within ``value``."""

    keys: tuple[str, ...]
    value: Bounds
    complete: bool = False
    key_word: str = "key"
    required: tuple[str, ...] = ()

    def check(self, table: Mapping[str, float], where: str) -> None:
        unknown = sorted(set(table) - set(self.keys))
        if unknown:
            raise ProfileError(f"{where} has unknown {self.key_word}(s) {shown(unknown, 120)}; "
                               f"valid: {', '.join(self.keys)}")
        needed = self.keys if self.complete else self.required
        missing = [k for k in needed if k not in table]
        if missing:
            raise ProfileError(f"{where} needs a value per {self.key_word} of {', '.join(needed)}; "
                               f"missing {missing}")
        for key, value in table.items():
            self.value.check(value, f"{where}.{key}")


def valid(rule, default=dataclasses.MISSING, **kw):
    """A dataclass field whose valid values are ``rule`` (checked by :func:`check_field`)."""
    return field(default=default, metadata={"valid": rule}, **kw)


TYPE_WORDS = {int: "an integer", float: "a number", str: "a string"}


def check_type(value, annotation, where: str):
    """``value`` converted to ``annotation`` (int, float, str, Mapping[str, float], or one of them
    ``| None``, where TOML's missing key is the None) or ProfileError."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (collections.abc.Mapping, dict):
        if not isinstance(value, dict):
            raise ProfileError(f"{where} must be a table of numbers, got {shown(value)}")
        return types.MappingProxyType({k: check_type(v, float, f"{where}.{k}") for k, v in value.items()})
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer beyond the float range
            raise ProfileError(f"{where} must be a finite number, got {shown(value)}") from None
    if isinstance(value, annotation) and not isinstance(value, bool):
        return value
    raise ProfileError(f"{where} must be {TYPE_WORDS.get(annotation, annotation)}, got {shown(value)}")


def fields_of(cls) -> dict[str, tuple[dataclasses.Field, object]]:
    """``{name: (field, type)}`` of a dataclass (cached: get_type_hints is slow)."""
    if cls not in _FIELDS:
        hints = typing.get_type_hints(cls)
        _FIELDS[cls] = {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}
    return _FIELDS[cls]


_FIELDS: dict[type, dict] = {}


def check_field(cls, name: str, value, where: str):
    """``value`` as a valid value of field ``name`` of the dataclass ``cls``: converted to the field's
    type and within its declared valid values (``field(metadata={"valid": ...})``), else ProfileError
    naming ``where``. The one place the declarations are checked."""
    f, annotation = fields_of(cls)[name]
    value = check_type(value, annotation, where)
    rule = f.metadata.get("valid")
    if rule is not None and value is not None:
        rule.check(value, where)
    return value


def check_fields(cls, values: Mapping, where: str) -> dict:
    """:func:`check_field` for every declared field of ``cls`` in ``values`` (None values and fields
    without a declaration pass); ``where`` is the table, e.g. ``"x.toml: fpga"``."""
    return {name: (check_field(cls, name, value, f"{where}.{name}")
                   if name in fields_of(cls) and value is not None and "valid" in fields_of(cls)[name][0].metadata
                   else value)
            for name, value in values.items()}

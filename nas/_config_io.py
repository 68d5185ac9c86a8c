"""Reading frozen-dataclass configs from TOML tables with one-line errors naming the key."""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, fields
from pathlib import Path

from search_spaces import NASError


class ConfigError(NASError, ValueError):
    """A config file or value is invalid; the message names the key and the valid values."""


_KINDS = {int: "an integer", float: "a number", str: "a string", tuple: "a list", bool: "true or false"}


def read_toml(path: Path) -> dict:
    """The parsed TOML document at ``path``; ``ConfigError`` if unreadable or malformed."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config {str(path)!r}: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config {str(path)!r} is not valid TOML: {err}") from None


def subtable(blob: dict, key: str, source: str) -> dict:
    """``blob[key]`` (``{}`` if absent); ``ConfigError`` if it is not a table."""
    table = blob.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{key}] must be a table, got {type(table).__name__}")
    return table


def typed_values(cls, table: dict, *, source: str) -> dict:
    """``table`` checked against ``cls``'s fields: unknown keys and values whose type differs from
    the field default's are errors (ints are accepted for floats; lists become tuples). Fields
    without a default, or with a ``None`` default, must be given as strings unless listed in
    ``cls.TOML_TYPES`` (``{field: type}``)."""
    valid = {f.name: f for f in fields(cls)}
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; valid keys: {', '.join(valid)}")
    declared = getattr(cls, "TOML_TYPES", {})
    values = {}
    for key, value in table.items():
        default = valid[key].default
        if key in declared:
            expected = declared[key]
        elif default is MISSING or default is None:
            expected = str
        else:
            expected = float if isinstance(default, float) else type(default)
        if expected is tuple and isinstance(value, list):
            value = tuple(value)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            kind = _KINDS.get(expected, expected.__name__)
            raise ConfigError(f"{source}: {key} must be {kind}, got {value!r}")
        values[key] = value
    return values

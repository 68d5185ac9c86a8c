"""Reading frozen-dataclass configs from TOML tables with one-line errors naming the key, and the one
range checker every config and command-line number uses (:class:`Range`, :func:`check_ranges`)."""

from __future__ import annotations

import math
import tomllib
from dataclasses import MISSING, dataclass, fields
from numbers import Integral, Real
from pathlib import Path

from search_spaces import NASError
from search_spaces._checks import shown  # noqa: F401 - re-exported: nas code imports it from here


class ConfigError(NASError, ValueError):
    """A config file or value is invalid; the message names the key and the valid values."""


_KINDS = {int: "an integer", float: "a number", str: "a string", tuple: "a list", bool: "true or false"}

MAX_SEED = 2**32 - 1  # every seed a numpy and torch generator take as given


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric setting: finite, ``low <= v <= high`` (``<`` at an ``open`` end),
    and an integer when ``integer``. ``str(Range)`` is the phrase an error uses ("an integer >= 1 and
    <= 100000"); one instance serves a config key and the command-line flag that overrides it."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    low_open: bool = False
    high_open: bool = False

    def __str__(self) -> str:
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {_number(self.low)}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {_number(self.high)}")
        kind = "an integer " if self.integer else ("" if bounds else "a finite number")
        return kind + " and ".join(bounds)

    def holds(self, value) -> bool:
        """Whether ``value`` (any object) is a valid value."""
        if isinstance(value, bool) or not isinstance(value, Integral if self.integer else Real):
            return False
        if not isinstance(value, Integral) and not math.isfinite(value):  # (an int is finite; a huge one has no float)
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def ints(low: int, high: int) -> Range:
    """The integers ``low..high``."""
    return Range(low, high, integer=True)


def numbers(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Range:
    """The finite numbers from ``low`` to ``high`` (an ``open`` end excluded)."""
    return Range(low, high, low_open=low_open, high_open=high_open)


SEED = ints(0, MAX_SEED)
REPEATS = ints(1, 10_000)  # timed runs per measurement
# nas.profiling.device.ProfileSettings' numbers: the [profile] table of `nas run`, the `nas profile` flags
PROFILE_RANGES = {"samples": ints(10, 1_000_000), "holdout": numbers(0.05, 0.5), "coverage": ints(0, 1_000_000),
                  "threads": ints(1, 1024), "warmup": ints(0, 10_000), "repeats": REPEATS, "seed": SEED,
                  "chunk": ints(1, 10_000), "interval": numbers(0.5, 0.99)}


def check_ranges(obj, ranges: dict, *, skip_none: bool = True) -> None:
    """``ConfigError`` naming the first attribute of ``obj`` outside its :class:`Range` in ``ranges``
    (``{name: Range}``) and the valid range; ``None`` values pass when ``skip_none``."""
    for name, valid in ranges.items():
        value = getattr(obj, name)
        if value is None and skip_none:
            continue
        if not valid.holds(value):
            raise ConfigError(f"{name} must be {valid}, got {shown(value)}")


def check_host_port(text: str | None, where: str) -> str | None:
    """``text`` (``None`` passes) if it is ``HOST:PORT`` with a port in 1..65535, else ``ConfigError`` naming
    ``where`` (a flag or a key)."""
    if text is None:
        return None
    host, sep, port = str(text).rpartition(":")
    if not (sep and host and port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        raise ConfigError(f"{where} must be HOST:PORT with a port in 1..65535, such as 127.0.0.1:9190, got "
                          f"{shown(text)}")
    return text


def from_table(cls, table: dict, *, source: str):
    """``cls(**typed_values(cls, table, source=source))``, with a ``ConfigError`` raised by the
    constructor's own checks prefixed by ``source`` (so it names the file, the table and the key)."""
    values = typed_values(cls, table, source=source)
    try:
        return cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


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
            raise ConfigError(f"{source}: {key} must be {kind}, got {shown(value)}")
        values[key] = value
    return values

"""Small checks every room that reads untrusted files shares (no numpy, no project imports): how a bad value
is shown in a one-line error, whether a parsed JSON/TOML value is a finite number, and the ``parse_constant``
hook that refuses JSON's NaN and Infinity. ``kernels`` may not import this room and keeps its own copy
(``kernels/tvm/_db_check.py``)."""

from __future__ import annotations

import math


def shown(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a 5000-digit number stays one short line); a repr over several
    lines (a tensor's) has its white space folded, so an error stays one line."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's int-to-string conversion limit
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    if "\n" in text:
        text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_finite_number(value) -> bool:
    """Whether ``value`` is a finite ``int`` or ``float`` (bool excluded), as ``json``/``tomllib`` parse them; an
    int too large for a float counts as finite (no ``OverflowError``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


class JSONConstantError(ValueError):
    """A JSON document holds ``NaN``, ``Infinity`` or ``-Infinity`` (raised by :func:`refuse_json_constant`)."""


def refuse_json_constant(name: str):
    """``json.loads``' ``parse_constant``: ``NaN``, ``Infinity`` and ``-Infinity`` are refused with a
    :class:`JSONConstantError` (a ``ValueError``): they are not numbers JSON allows."""
    raise JSONConstantError(f"{name} is not a number JSON allows")

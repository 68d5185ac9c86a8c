"""What the hostile file tests share: edits of a parsed document, and the Hypothesis pieces that mutate one.

* :func:`set_key`/:func:`drop_key`: an edit that sets or deletes a dotted key of a JSON document.
* :func:`walk`: the ``(parent, key)`` a list of random steps reaches in a document.
* :data:`INT64`, :data:`PAST_INT64`, :data:`ANY_FLOAT`, :func:`nested`, :func:`mutations`: the strategies
  a property draws its mutations from; :func:`mutate` applies 1..N of them to a document;
  :func:`set_delete_or_add` is the part of a mutation every JSON file test applies alike.
* :func:`overwrite_bytes`/:func:`now_and_then_overwrite_bytes`: garbage over a slice of a serialised file.
* :func:`tally_examples`: run a property and tally its examples (``conftest.tally``), broken or not.

The property functions themselves stay in their test files, decorators included: with
``derandomize=True`` Hypothesis seeds a property from its source text, decorators and all, so the same
text keeps the same examples.

(No ``__init__.py`` in tests/: pytest's default import mode puts ``tests/hostile`` on ``sys.path``, so the
test files import this module as ``_mutations``, as they import ``conftest``.)
"""

from __future__ import annotations

from typing import Callable, Sequence

from conftest import tally
from hypothesis import strategies as st

# ------------------------------------------------------------------------------------------ edits


def _path(path: str) -> list:
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def set_key(path: str, value):
    """An edit that sets the dotted ``path`` (list indices as numbers) of the document to ``value``."""
    def edit(doc):
        *parents, last = _path(path)
        for key in parents:
            doc = doc[key]
        doc[last] = value
    return edit


def drop_key(path: str):
    """An edit that deletes the dotted ``path`` (list indices as numbers) of the document."""
    def edit(doc):
        *parents, last = _path(path)
        for key in parents:
            doc = doc[key]
        del doc[last]
    return edit


# ------------------------------------------------------------------------------------------ property
def walk(doc, steps: Sequence[int], *, lists: bool = True):
    """``(parent, key)`` reached from ``doc`` by ``steps`` (each picks a child of an object, and with ``lists``
    of an array); ``(None, None)`` where the first step finds no child."""
    parent, key, node = None, None, doc
    for step in steps:
        if isinstance(node, dict) and node:
            parent, key = node, sorted(node)[step % len(node)]
        elif lists and isinstance(node, list) and node:
            parent, key = node, step % len(node)
        else:
            break
        node = parent[key]
    return parent, key


INT64 = st.integers(min_value=-2**63, max_value=2**63 - 1)
PAST_INT64 = st.integers(min_value=2**63, max_value=10**400)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False)  # tests/conftest.py: no denormals


def nested(scalars, *, list_size: int, key_size: int):
    """A scalar, a list of up to ``list_size`` of them, or an object of up to 3 (keys up to ``key_size`` long)."""
    return st.one_of(scalars, st.lists(scalars, max_size=list_size),
                     st.dictionaries(st.text(max_size=key_size), scalars, max_size=3))


def mutations(ops: Sequence[str], values, *, depth: int, key_size: int, factors: Sequence[float] | None = None):
    """``(op, steps (1..depth), value, a new key (1..key_size long)[, factor])`` tuples."""
    parts = [st.sampled_from(ops), st.lists(st.integers(0, 10**6), min_size=1, max_size=depth), values,
             st.text(min_size=1, max_size=key_size)]
    if factors is not None:
        parts.append(st.sampled_from(factors))
    return st.tuples(*parts)


def mutate(draw, doc, mutation, *, most: int, apply: Callable) -> object:
    """``doc`` after 1..``most`` drawn ``mutation``s: each walks to a ``(parent, key)`` and calls
    ``apply(parent, key, op, value, *rest)``; one that finds no key there replaces the whole document by its
    value."""
    for op, steps, value, *rest in draw(st.lists(mutation, min_size=1, max_size=most)):
        parent, key = walk(doc, steps)
        if parent is None:
            doc = value
            continue
        apply(parent, key, op, value, *rest)
    return doc


def set_delete_or_add(parent, key, op: str, value, extra) -> None:
    """``set`` the value, ``delete`` the key, or ``add`` the value under the new key ``extra`` (objects only)."""
    if op == "set":
        parent[key] = value
    elif op == "delete":
        del parent[key]
    elif op == "add" and isinstance(parent, dict):
        parent[extra] = value


def overwrite_bytes(draw, data: bytes, width: int) -> bytes:
    """``data`` with 1..``width`` random bytes over the ``width`` bytes at a random place."""
    at = draw(st.integers(0, max(0, len(data) - 1)))
    return data[:at] + draw(st.binary(min_size=1, max_size=width)) + data[at + width:]


def now_and_then_overwrite_bytes(draw, data: bytes, width: int) -> bytes:
    """:func:`overwrite_bytes` one time in ten, else ``data``."""
    if draw(st.sampled_from([False] * 9 + [True])):  # binary garbage over a slice of the file
        data = overwrite_bytes(draw, data, width)
    return data


def tally_examples(name: str, runs: list, prop: Callable[[], None], *, kind: str = "loader") -> None:
    """Run the Hypothesis property ``prop`` (each example appends to ``runs``) and tally its examples under
    ``kind``/``name``: all broken if it fails, none if it passes."""
    try:
        prop()
    except BaseException:
        tally(kind, name, broken=True, examples=len(runs))
        raise
    tally(kind, name, broken=False, examples=len(runs))

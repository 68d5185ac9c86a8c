"""Shared pieces of the ``nas`` command line: the usage exit code, the input error, argument types, the
``--quiet`` log callback, the front table of ``nas search`` and ``nas pareto``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from search_spaces import NASError

EXIT_USAGE = 2


class CLIInputError(NASError, ValueError):
    """A command-line value is malformed (bad JSON, unreadable file)."""


def _int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def load_arch_json(text: str) -> dict:
    """Parse ``--arch``: a JSON object, or ``@PATH`` to read one from a file."""
    source = "--arch"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise CLIInputError(f"cannot read --arch file {str(path)!r}: {err.strerror or err}") from None
        except UnicodeDecodeError:
            raise CLIInputError(f"--arch file {str(path)!r} is not UTF-8 text; expected a JSON object") from None
        source = f"--arch file {str(path)!r}"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise CLIInputError(f"{source} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise CLIInputError(f"{source} is nested too deeply to be an architecture; expected a flat JSON object") from None
    if not isinstance(obj, dict):
        raise CLIInputError(f"{source} must be a JSON object like {{\"ks\": [...], ...}}, got {type(obj).__name__}")
    return obj


def stderr_log(quiet: bool):
    """The ``log`` callback of a command with ``--quiet``: progress lines to stderr, or nothing."""
    return (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr))


def render_front(front, names, space=None) -> str:
    """``front`` (a ``SearchResult.pareto()`` frame of a job of ``space``) as
    :func:`nas.report.tables.render_front_table`."""
    from nas.report.tables import render_front_table

    return render_front_table(front, names, empty="(no feasible evaluation yet)", space=space)

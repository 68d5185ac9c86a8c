"""Shared pieces of the ``nas`` command line: the usage exit code, the one-line parser, the input error,
argument types (every number has a range), the ``--quiet`` log callback, the front table of ``nas search``
and ``nas pareto``."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from nas._config_io import Range, ints, numbers, shown
from search_spaces import NASError
from search_spaces._checks import JSONConstantError, refuse_json_constant

EXIT_USAGE = 2


class CLIInputError(NASError, ValueError):
    """A command-line value is malformed (bad JSON, unreadable file)."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, ``PROG: error: MESSAGE``, and exit code 2
    (argparse's own prints the usage block first); ``--help`` is unchanged. Subparsers made with
    ``add_subparsers`` are of this class too."""

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("parser_class", type(self))
        return super().add_subparsers(**kwargs)

    def error(self, message: str):
        # "argument --lr: must be ..." (a range of ours) reads better as "--lr must be ..."
        message = re.sub(r"^argument (\S+?): (must be )", r"\1 \2", " ".join(str(message).split()))
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def number_in(valid: Range):
    """An argparse type: a number (an integer if ``valid.integer``) within ``valid``; NaN and inf are refused."""

    def parse(text: str):
        try:
            value = int(text) if valid.integer else float(text)
        except ValueError:  # also an integer beyond Python's int-string conversion limit
            value = None
        if value is None or not valid.holds(value):
            raise argparse.ArgumentTypeError(f"must be {valid}, got {shown(text)}")
        return value

    return parse


def int_in(low: int, high: int):
    """An argparse type: an integer from ``low`` to ``high``."""
    return number_in(ints(low, high))


def float_in(low: float, high: float, *, low_open: bool = False):
    """An argparse type: a finite number from ``low`` (excluded if ``low_open``) to ``high``."""
    return number_in(numbers(low, high, low_open=low_open))


class _Unusable(ValueError):
    """A JSON number no setting can hold (raised inside ``json.loads`` by the ``parse_float`` hook below)."""


def _finite_float(text: str) -> float:
    """``json``'s ``parse_float``: a finite float (``1e999`` is refused, not read as inf)."""
    value = float(text)
    if not math.isfinite(value):
        raise _Unusable(f"the number {shown(text)} is out of range")
    return value


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
        obj = json.loads(text, parse_float=_finite_float, parse_constant=refuse_json_constant)
    except json.JSONDecodeError as err:
        raise CLIInputError(f"{source} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except (_Unusable, JSONConstantError) as err:  # 1e999; NaN, Infinity
        raise CLIInputError(f"{source}: {err}; expected a JSON object of settings such as {{\"ks\": [3, 5], ...}}") \
            from None
    except ValueError:  # an integer beyond Python's int-string conversion limit (4300 digits)
        raise CLIInputError(f"{source} holds an integer too long to be a setting; expected a JSON object of settings "
                            "such as {\"ks\": [3, 5], ...}") from None
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

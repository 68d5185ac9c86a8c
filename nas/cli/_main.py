"""The ``nas`` command line. User errors print one line and exit with code 2.

Each command is a module of this package with ``add_parser(subparsers)`` (its parser, returned) and
``run(args) -> int`` (parse, call one function of the rooms below, print)."""

from __future__ import annotations

import argparse
import sys
import warnings
from contextlib import contextmanager
from typing import Sequence

import hw_profiles  # noqa: F401  (registers the template source that resolves "<space>+hw(<device>)")
from search_spaces import NASError

from nas.cli import (describe, devices, evaluate, export, jobs, pareto, profile, run, sample, search, spaces, train,
                     tune_space, worker)
from nas.cli._args import EXIT_USAGE, OneLineParser

# In the order ``nas --help`` lists them.
COMMANDS = (spaces, describe, devices, profile, search, run, worker, jobs, pareto, sample, train, evaluate, export,
            tune_space)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nas", description="hwnas: hardware-aware neural architecture search")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for command in COMMANDS:
        command_parser = command.add_parser(sub)
        command_parser.set_defaults(func=command.run, command_parser=command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nas ARGV``; returns the exit code (0, or 2 after printing one error line; ``--help`` returns 0)."""
    try:
        args, unknown = build_parser().parse_known_args(argv)
        if unknown:  # named by the command's parser ("nas train: error: ..."), not the top one
            text = " ".join(unknown)
            args.command_parser.error(f"unrecognized arguments: {text if len(text) <= 200 else text[:197] + '...'}")
    except SystemExit as exit_:  # a usage error, already printed as one line, or --help
        return exit_.code if isinstance(exit_.code, int) else 0
    try:
        with _one_line_warnings(args.command):
            return args.func(args)
    except NASError as err:
        print(f"nas {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `nas sample ... | head`
        sys.stderr.close()
        return 0


@contextmanager
def _one_line_warnings(command: str):
    """Our own warnings (e.g. a store's damaged rows were skipped) as one line each: ``nas CMD: warning: ...``."""
    from nas.jobs.store import StoreWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, StoreWarning):
            print(f"nas {command}: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown

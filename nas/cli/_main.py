"""The ``nas`` command line. User errors print one line and exit with code 2.

Each command is a module of this package with ``add_parser(subparsers)`` (its parser, returned) and
``run(args) -> int`` (parse, call one function of the rooms below, print)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import hw_profiles  # noqa: F401  (registers the template source that resolves "<space>+hw(<device>)")
from search_spaces import NASError

from nas.cli import (describe, devices, evaluate, export, jobs, pareto, profile, run, sample, search, spaces, train,
                     tune_space, worker)
from nas.cli._args import EXIT_USAGE

# In the order ``nas --help`` lists them.
COMMANDS = (spaces, describe, devices, profile, search, run, worker, jobs, pareto, sample, train, evaluate, export,
            tune_space)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="hwnas: hardware-aware neural architecture search")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NASError as err:
        print(f"nas {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `nas sample ... | head`
        sys.stderr.close()
        return 0

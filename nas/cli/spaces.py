"""``nas spaces``: list the registered search spaces."""

from __future__ import annotations

import argparse

from search_spaces import get_space, list_spaces


def add_parser(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser("spaces", help="list the registered search spaces")


def run(args: argparse.Namespace) -> int:
    for name in list_spaces():
        space = get_space(name)
        print(f"{name}\tversion {space.version}\t{len(space.params)} settings\t{space.size:.3g} raw configs")
    return 0

"""``nas sample``: random architectures as JSON lines."""

from __future__ import annotations

import argparse

import numpy as np

from search_spaces import get_space

from nas.cli._args import _int_at_least


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("sample", help="random architectures as JSON lines")
    p.add_argument("space", help="a registered space (see `nas spaces`)")
    p.add_argument("-n", type=_int_at_least(1), default=1, help="how many (default 1)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default 0)")
    return p


def run(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    rng = np.random.default_rng(args.seed)
    for _ in range(args.n):
        print(space.sample(rng).to_json())
    return 0

"""``nas sample``: random architectures as JSON lines."""

from __future__ import annotations

import argparse

import numpy as np

from search_spaces import get_space

from nas._config_io import SEED
from nas.cli._args import int_in, number_in


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("sample", help="random architectures as JSON lines")
    p.add_argument("space", help="a registered space (see `nas spaces`)")
    p.add_argument("-n", type=int_in(1, 1_000_000), default=1, help="how many (default 1; at most 1000000)")
    p.add_argument("--seed", type=number_in(SEED), default=0, help="random seed (default 0)")
    return p


def run(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    rng = np.random.default_rng(args.seed)
    for _ in range(args.n):
        print(space.sample(rng).to_json())
    return 0

"""``nas worker``: evaluate a job's queued candidates (run several, on any machine)."""

from __future__ import annotations

import argparse

from nas.cli._args import float_in, stderr_log


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("worker", help="evaluate a job's queued candidates (run several, on any machine)")
    p.add_argument("--job", required=True)
    p.add_argument("--storage", required=True, help="the job's Optuna storage URL, e.g. postgresql://USER@HOST/DB")
    p.add_argument("--idle-exit", type=float_in(0, 1_000_000), default=None, metavar="S",
                   help="exit after this many seconds without work (at most 1000000; default: never)")
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from nas.jobs.worker import run_worker

    n = run_worker(args.job, storage=args.storage, idle_exit_s=args.idle_exit, log=stderr_log(args.quiet))
    print(f"worker: {n} trial(s) evaluated for job {args.job}")
    return 0

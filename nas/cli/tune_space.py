"""``nas tune-space``: tune a space's TVM layer workloads once into a persistent database."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas._config_io import SEED
from nas.cli._args import float_in, int_in, number_in, stderr_log
from nas.cli.export import MAX_TUNE_MINUTES


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("tune-space", help="tune a space's TVM layer workloads once into a persistent database")
    p.add_argument("space", help="a registered space (see `nas spaces`)")
    p.add_argument("--device", required=True, help="a cpu profile (tuned and measured on this host), e.g. host-cpu")
    p.add_argument("--minutes", required=True, type=float_in(0, MAX_TUNE_MINUTES, low_open=True),
                   help=f"wall-clock tuning budget in minutes (> 0, at most {MAX_TUNE_MINUTES})")
    p.add_argument("--resolutions", help="comma-separated input resolutions to tune (default: all the space's)")
    p.add_argument("--db", help="database folder (default $HWNAS_CACHE_DIR, else $XDG_CACHE_HOME/hwnas, else "
                                "~/.cache/hwnas, then tvm-db/PROFILE@V/SPACE@V)")
    p.add_argument("--check", type=int_in(0, 10_000), default=5,
                   help="random subnets whose database hit rate is reported afterwards (default 5)")
    p.add_argument("--seed", type=number_in(SEED), default=0, help="random seed (default 0)")
    p.add_argument("--max-trials-per-task", type=int_in(1, 1_000_000), default=1000,
                   help="stop tuning a task after this many candidates (default 1000; 2: coverage only)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def run(args: argparse.Namespace) -> int:
    from nas.export.tuning import render_report, tune_space

    report = tune_space(args.space, device=args.device, minutes=args.minutes, resolutions=args.resolutions,
                        db=Path(args.db) if args.db else None, check=args.check, seed=args.seed,
                        max_trials_per_task=args.max_trials_per_task,
                        progress=not args.no_progress,
                        log=stderr_log(args.quiet))
    print(json.dumps(report.to_json(), indent=2) if args.json else render_report(report))
    return 0

"""``nas run``: end to end: train, profile, search with baseline, Pareto front, export (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("run", help="end to end: train, profile, search with baseline, Pareto front, export "
                                          "(resumable)")
    p.add_argument("config", help="TOML file, e.g. experiments/quickstart.toml (see nas/pipeline/config.py)")
    p.add_argument("--out", required=True, help="output folder; rerunning with the same one resumes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    from nas.pipeline.run import run_pipeline
    from nas.pipeline.config import PipelineConfig

    run_pipeline(PipelineConfig.from_toml(Path(args.config)), Path(args.out), progress=not args.no_progress)
    return 0

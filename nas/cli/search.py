"""``nas search``: run or resume a search job from a TOML config (and its random-search baseline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli._args import float_in, number_in, render_front
from nas.jobs.config import SearchSettings

MAX_WAIT_S = 1_000_000  # about 11 days


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("search", help="run or resume a search job from a TOML config")
    p.add_argument("config", help="TOML file: [search], [[objectives]], [[constraints]], [accuracy], [latency_models]")
    p.add_argument("--job", help="job name (default: [search] job, else SPACE-ALGORITHM-seedN)")
    p.add_argument("--storage", help="Optuna storage URL (default: [search] storage, else sqlite:///nas.db)")
    p.add_argument("--budget", type=number_in(SearchSettings.RANGES["budget"]),
                   help="expensive evaluations in total (resume counts past ones; at most 1000000)")
    p.add_argument("--no-local-eval", action="store_true", help="only queue candidates; `nas worker`s evaluate")
    p.add_argument("--wait-timeout", type=float_in(0, MAX_WAIT_S), default=1800.0, metavar="S",
                   help="give up (exit 2) when queued candidates wait S seconds with no worker evaluating them "
                        "(default 1800; 0: wait forever)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the baseline jobs (random search; for a quantized space also the sequential "
                        "float-then-int8 one; same budget and seed) and their hypervolume reports")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from nas.jobs.from_config import search_from_config

    done = search_from_config(Path(args.config), job=args.job, storage=args.storage, budget=args.budget,
                              evaluate_locally=not args.no_local_eval, baseline=not args.no_baseline,
                              progress=not args.no_progress, wait_timeout_s=args.wait_timeout or None)
    result = done.result
    front = result.pareto()
    print(f"job {result.name}: {len(result.trials())} evaluations, {len(front)} on the Pareto front "
          f"(storage {done.storage})")
    print(render_front(front, [o.name for o in result.objectives], result.space))
    if done.report is not None:
        report = done.report
        print(f"hypervolume (normalised, ref 1.1): {report.hypervolume:.4f} vs random search at equal budget "
              f"and seed {report.baseline_hypervolume:.4f} (ratio {report.ratio}); baseline job "
              f"{done.baseline.name}")
        print(report.savings_line())
    if done.sequential is not None:
        seq = done.sequential
        print(f"quantization: joint search (arch x policy) hypervolume {seq.joint_hypervolume:.4f} vs sequential "
              f"(float search, then int8) {seq.sequential_hypervolume:.4f} (ratio {seq.ratio}); "
              f"{seq.joint_evaluations} vs {seq.sequential_evaluations} evaluations; float job {seq.float_job}")
    from nas.jobs.predictor_report import accuracy_predictor_report

    calibration = accuracy_predictor_report(result)  # linas jobs: held-out predictions vs measured values
    if calibration is not None:
        print(calibration.line())
    return 0

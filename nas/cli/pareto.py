"""``nas pareto``: the Pareto front of a job as a table, CSV or JSON, and optionally a PNG plot.

JSON is an object: ``front`` (one record per front member, the table's columns) and
``accuracy_predictor`` (the calibration of a ``linas`` job's accuracy predictor on its held-out
evaluations, ``nas.jobs.predictor_report``; null for other jobs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nas.cli._args import render_front


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("pareto", help="the Pareto front of a job: table, CSV, JSON, PNG")
    p.add_argument("job")
    p.add_argument("--storage", default="sqlite:///nas.db", help="Optuna storage URL (default sqlite:///nas.db)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--plot", metavar="FRONT.png", help="also write a plot of the front")
    p.add_argument("--objectives", help="comma-separated subset of the job's objectives")
    return p


def run(args: argparse.Namespace) -> int:
    from nas.jobs.results import load_job

    job = result = load_job(args.job, storage=args.storage)
    if args.objectives:
        result = result.with_objectives(args.objectives)
    front = result.pareto()
    if args.format in ("csv", "json"):  # a co-design job's front carries hw_id and its accelerator's label
        from nas.report._accelerator import accelerator_columns

        front = accelerator_columns(front, result.space)
    if args.format == "csv":
        print(front.to_csv(index=False), end="")
    elif args.format == "json":  # {"front": [records], "accuracy_predictor": calibration or null}
        print(_json_output(front, job))
    else:
        print(render_front(front, [o.name for o in result.objectives], result.space))
    if args.plot:
        from nas.report.plots import plot_front

        plot_front(result.trials(), front, result.objectives, Path(args.plot), title=f"job {args.job}",
                   space=result.space)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _json_output(front, job) -> str:
    """The front's records and the calibration of the job's accuracy predictor (over all its objectives,
    whatever ``--objectives`` kept)."""
    import json

    from nas.jobs.predictor_report import accuracy_predictor_report

    calibration = accuracy_predictor_report(job)
    return json.dumps({"front": json.loads(front.to_json(orient="records")),
                       "accuracy_predictor": None if calibration is None else calibration.to_json()}, indent=2)

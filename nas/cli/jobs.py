"""``nas jobs``: list the search jobs in a storage, one tab-separated line each."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("jobs", help="list the search jobs in a storage")
    p.add_argument("--storage", default="sqlite:///nas.db", help="Optuna storage URL (default sqlite:///nas.db)")
    return p


def run(args: argparse.Namespace) -> int:
    from nas.jobs.summary import job_summaries

    for job in job_summaries(args.storage):
        print(f"{job.name}\t{job.space}\t{job.algorithm}\t{job.evaluated}/{job.budget} evaluated"
              f"\t{job.status}\tobjectives {','.join(job.objectives)}")
    return 0

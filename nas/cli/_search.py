"""The ``nas search``, ``worker``, ``jobs`` and ``pareto`` commands (parsers: :mod:`nas.cli._main`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nas.cli._args import CLIInputError

def cmd_search(args: argparse.Namespace) -> int:
    from nas.jobs.search import search
    from nas.jobs.config import SearchConfig

    config = SearchConfig.from_toml(Path(args.config))
    settings = config.search
    space, objectives, constraints, catalog, extra = config.build()
    storage = args.storage or settings.storage
    result = search(space, objectives, constraints, algorithm=settings.algorithm,
                    budget=args.budget or settings.budget, seed=settings.seed, storage=storage,
                    job=args.job or settings.job or None, batch_size=settings.batch_size or None, catalog=catalog,
                    evaluate_locally=not args.no_local_eval, progress=not args.no_progress, config_extra=extra)
    front = result.pareto()
    print(f"job {result.name}: {len(result.trials())} evaluations, {len(front)} on the Pareto front "
          f"(storage {storage})")
    print(render_front(front, [o.name for o in objectives]))
    if not args.no_baseline and settings.algorithm != "random":
        from nas.jobs.results import compare_hypervolume

        baseline = search(space, objectives, constraints, algorithm="random", budget=args.budget or settings.budget,
                          seed=settings.seed, storage=storage, job=f"{result.name}.random", catalog=catalog,
                          batch_size=settings.batch_size or None, evaluate_locally=not args.no_local_eval,
                          progress=not args.no_progress, config_extra=extra)
        report = compare_hypervolume(result, baseline)
        result.job.study.set_user_attr("report", report)
        print(f"hypervolume (normalised, ref 1.1): {report['hypervolume']:.4f} vs random search at equal budget "
              f"and seed {report['baseline_hypervolume']:.4f} (ratio {report['ratio']}); baseline job "
              f"{baseline.name}")
    return 0


def render_front(front, names) -> str:
    if not len(front):
        return "(no feasible evaluation yet)"
    cols = ["trial", "arch_id", *names, *[f"{n}.source" for n in names]]
    return front[cols].to_string(index=False)


def cmd_worker(args: argparse.Namespace) -> int:
    from nas.jobs.worker import run_worker

    n = run_worker(args.job, storage=args.storage, idle_exit_s=args.idle_exit,
                   log=(lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr)))
    print(f"worker: {n} trial(s) evaluated for job {args.job}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from nas.jobs.results import load_job
    from nas.jobs.store import list_jobs, open_storage

    storage = open_storage(args.storage)
    for name in list_jobs(storage):
        result = load_job(name, storage=storage)
        trials = result.trials()
        cfg = result.job.config
        status = result.job.study.user_attrs.get("status", "running")
        print(f"{name}\t{cfg.get('space')}\t{cfg.get('algorithm')}\t{int((trials.state != 'pruned').sum()) if len(trials) else 0}/{cfg.get('budget')} evaluated"
              f"\t{status}\tobjectives {','.join(o['name'] for o in cfg.get('objectives', []))}")
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    from nas.jobs.results import load_job

    result = load_job(args.job, storage=args.storage)
    names = [o.name for o in result.objectives]
    if args.objectives:
        chosen = [n.strip() for n in args.objectives.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in names]
        if unknown or not chosen:
            raise CLIInputError(f"--objectives {args.objectives!r}: unknown {unknown}; job {args.job!r} has {names}")
        result.objectives = [o for o in result.objectives if o.name in chosen]
    front = result.pareto()
    if args.format == "csv":
        print(front.to_csv(index=False), end="")
    elif args.format == "json":
        print(front.to_json(orient="records", indent=2))
    else:
        print(render_front(front, [o.name for o in result.objectives]))
    if args.plot:
        from nas.report.plots import plot_front

        plot_front(result.trials(), front, result.objectives, Path(args.plot), title=f"job {args.job}")
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0

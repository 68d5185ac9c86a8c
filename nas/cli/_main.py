"""The ``nas`` command line. User errors print one line and exit with code 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from search_spaces import NASError, get_space, list_spaces

from nas.cli._args import EXIT_USAGE, CLIInputError, _int_at_least, load_arch_json  # noqa: F401
from nas.cli._search import cmd_jobs, cmd_pareto, cmd_search, cmd_worker, render_front  # noqa: F401


def cmd_spaces(args: argparse.Namespace) -> int:
    for name in list_spaces():
        space = get_space(name)
        print(f"{name}\tversion {space.version}\t{len(space.params)} settings\t{space.size:.3g} raw configs")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from nas.report.describe import describe_arch, render_text

    space = get_space(args.space)
    arch = space.parse(load_arch_json(args.arch))
    info = describe_arch(space, arch, devices=args.device or ())
    print(json.dumps(info, indent=2) if args.json else render_text(info))
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from hw_profiles import get_profile, list_profiles

    profiles = [get_profile(name) for name in list_profiles()]
    if args.json:
        print(json.dumps([{"name": p.name, "version": p.version, "kind": p.kind, "description": p.description}
                          for p in profiles], indent=2))
    else:
        for p in profiles:
            print(f"{p.name:<12} {p.kind:<5} v{p.version:<3} {p.description}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    rng = np.random.default_rng(args.seed)
    for _ in range(args.n):
        print(space.sample(rng).to_json())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from nas.training.train import train
    from nas.training.config import TrainConfig

    config = TrainConfig.from_toml(Path(args.config)) if args.config else TrainConfig()
    config = config.with_overrides(
        space=args.space, data=args.data, strategy=args.strategy, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, steps_per_epoch=args.steps_per_epoch)
    train(config, out=Path(args.out), resume=args.resume, progress=not args.no_progress)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from nas.training.evaluation import evaluate_checkpoint

    result = evaluate_checkpoint(Path(args.checkpoint), load_arch_json(args.arch), data=args.data)
    if args.json:
        print(json.dumps({"top1": result.top1, "loss": result.loss, "n": result.n,
                          "bn_recalibrated": result.bn_recalibrated}))
    else:
        print(f"top1 {result.top1:.2%}  loss {result.loss:.4f}  ({result.n} images, BN recalibrated)")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from nas.profiling.device import ProfileSettings, profile_device, render_report

    settings = ProfileSettings(samples=args.samples, coverage=args.coverage, backend=args.backend,
                               threads=args.threads, repeats=args.repeats, seed=args.seed, chunk=args.chunk,
                               drift_correction=not args.no_drift_correction, rpc_tracker=args.rpc_tracker)
    report = profile_device(get_space(args.space), args.device, Path(args.out), settings=settings,
                            progress=not args.no_progress)
    print(json.dumps(report, indent=2) if args.json else render_report(report, Path(args.out)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nas.export._job_member import render_summary, resolve_and_export

    report = resolve_and_export(
        out=Path(args.out), formats=args.format, job=args.job, trial=args.trial, storage=args.storage,
        arch_obj=load_arch_json(args.arch) if args.arch is not None else None, space=args.space,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None, device=args.device,
        dynamic_batch=args.dynamic_batch, latency_model=Path(args.latency_model) if args.latency_model else None,
        repeats=args.repeats, tune_minutes=args.tune_minutes,
        tuning_db=Path(args.tuning_db) if args.tuning_db else None, rpc_tracker=args.rpc_tracker,
        log=(lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr)))
    print(json.dumps(report, indent=2) if args.json else render_summary(report, Path(args.out)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from nas.pipeline.run import run_quickstart
    from nas.pipeline.config import QuickstartConfig

    run_quickstart(QuickstartConfig.from_toml(Path(args.config)), Path(args.out), progress=not args.no_progress)
    return 0


def cmd_tune_space(args: argparse.Namespace) -> int:
    from nas.export.tuning import render_report, tune_space

    report = tune_space(args.space, device=args.device, minutes=args.minutes, resolutions=args.resolutions,
                        db=Path(args.db) if args.db else None, check=args.check, seed=args.seed,
                        max_trials_per_task=args.max_trials_per_task,
                        progress=not args.no_progress,
                        log=(lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr)))
    print(json.dumps(report, indent=2) if args.json else render_report(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="hwnas: hardware-aware neural architecture search")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("spaces", help="list the registered search spaces")
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser("describe", help="MACs, params, peak memory and layer table of one architecture")
    p.add_argument("space", help="a registered space (see `nas spaces`)")
    p.add_argument("--arch", required=True,
                   help='JSON object or @FILE: {"ks": [...], "e": [...], "d": [...], "r": R} or {param: value}')
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--device", action="append", metavar="PROFILE",
                   help="add this device's metrics with provenance (repeatable; see `nas devices`)")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("devices", help="list the device profiles")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("profile", help="build a device's latency model from measured subnets and layers")
    p.add_argument("--device", required=True,
                   help="a cpu profile: this host (host-cpu) or a board it reaches over TVM RPC (rpi4)")
    p.add_argument("--space", required=True, help="a registered space with a supernet (see `nas spaces`)")
    p.add_argument("--samples", type=_int_at_least(10), default=200, help="subnets to measure (default 200)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT",
                   help="TVM RPC tracker of a board profile (default: the profile's rpc_tracker or $HWNAS_RPC_TRACKER)")
    p.add_argument("--backend", choices=["onnxruntime", "tvm", "torch"], help="default: the profile's backend")
    p.add_argument("--threads", type=_int_at_least(1), help="intra-op threads (default: the profile's)")
    p.add_argument("--repeats", type=_int_at_least(1), default=20, help="timed runs per measurement (default 20)")
    p.add_argument("--coverage", type=_int_at_least(0), default=2000,
                   help="extra random subnets whose layer workloads are measured too (default 2000)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default 0)")
    p.add_argument("--chunk", type=_int_at_least(1), default=20,
                   help="items timed turn by turn beside a reference subnet (default 20)")
    p.add_argument("--no-drift-correction", action="store_true",
                   help="report raw latencies instead of rescaling each chunk by the reference subnet's drift")
    p.add_argument("--out", required=True, help="new output folder for the latency model and measurements")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("search", help="run or resume a search job from a TOML config")
    p.add_argument("config", help="TOML file: [search], [[objectives]], [[constraints]], [accuracy], [latency_models]")
    p.add_argument("--job", help="job name (default: [search] job, else SPACE-ALGORITHM-seedN)")
    p.add_argument("--storage", help="Optuna storage URL (default: [search] storage, else sqlite:///nas.db)")
    p.add_argument("--budget", type=_int_at_least(1), help="expensive evaluations in total (resume counts past ones)")
    p.add_argument("--no-local-eval", action="store_true", help="only queue candidates; `nas worker`s evaluate")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the random-search baseline job (same budget and seed) and its hypervolume report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("run", help="end to end: train, profile, search with baseline, Pareto front, export (resumable)")
    p.add_argument("config", help="TOML file, e.g. experiments/quickstart.toml (see nas/quickstart_config.py)")
    p.add_argument("--out", required=True, help="output folder; rerunning with the same one resumes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("worker", help="evaluate a job's queued candidates (run several, on any machine)")
    p.add_argument("--job", required=True)
    p.add_argument("--storage", required=True, help="the job's Optuna storage URL, e.g. postgresql://USER@HOST/DB")
    p.add_argument("--idle-exit", type=float, default=None, help="exit after this many seconds without work")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("jobs", help="list the search jobs in a storage")
    p.add_argument("--storage", default="sqlite:///nas.db", help="Optuna storage URL (default sqlite:///nas.db)")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("pareto", help="the Pareto front of a job: table, CSV, JSON, PNG")
    p.add_argument("job")
    p.add_argument("--storage", default="sqlite:///nas.db", help="Optuna storage URL (default sqlite:///nas.db)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--plot", metavar="FRONT.png", help="also write a plot of the front")
    p.add_argument("--objectives", help="comma-separated subset of the job's objectives")
    p.set_defaults(func=cmd_pareto)

    p = sub.add_parser("sample", help="random architectures as JSON lines")
    p.add_argument("space", help="a registered space (see `nas spaces`)")
    p.add_argument("-n", type=_int_at_least(1), default=1, help="how many (default 1)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("train", help="train a once-for-all supernet (also under torchrun for several processes)")
    p.add_argument("config", nargs="?", help="TOML file with a [train] table; flags override it")
    p.add_argument("--space", help="supernet/space name (default tiny_mbv3)")
    p.add_argument("--data", help="mnist-mini (default, embedded), cifar10:PATH or imagefolder:PATH")
    p.add_argument("--strategy", choices=["sandwich", "ps"], help="sandwich rule or progressive shrinking")
    p.add_argument("--epochs", type=_int_at_least(1))
    p.add_argument("--batch-size", type=_int_at_least(1))
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=_int_at_least(0))
    p.add_argument("--steps-per-epoch", type=_int_at_least(0), help="cap on steps per epoch (0: full pass)")
    p.add_argument("--out", required=True, help="output directory (checkpoint, logs)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1 accuracy of one subnet of a trained supernet (BN recalibrated)")
    p.add_argument("--checkpoint", required=True, help="a `nas train` output directory or its checkpoint.pt")
    p.add_argument("--arch", required=True, help="JSON object or @FILE, as for `describe`")
    p.add_argument("--data", help="dataset to evaluate on (default: the one it was trained on)")
    p.add_argument("--json", action="store_true", help='print {"top1": ..., "loss": ...}')
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="one subnet as files: torch state dict, ONNX, TVM library (parity-checked)")
    p.add_argument("--job", help="take the arch of a search job's trial (with --trial)")
    p.add_argument("--trial", type=_int_at_least(0), help="the trial number (see `nas pareto JOB`)")
    p.add_argument("--storage", default="sqlite:///nas.db", help="the job's Optuna storage URL (default sqlite:///nas.db)")
    p.add_argument("--arch", help="JSON object or @FILE, as for `describe` (instead of --job)")
    p.add_argument("--space", help="the arch's space (default: the checkpoint's)")
    p.add_argument("--checkpoint", help="a `nas train` output folder (default: a freshly initialised supernet)")
    p.add_argument("--format", default="torch,onnx,tvm", help="comma-separated subset of torch,onnx,tvm (default all)")
    p.add_argument("--device", default="host-cpu",
                   help="profile to build the TVM library for: host-cpu (default, tuned DB, measured here), a board "
                        "(rpi4: cross-built, measured over RPC), a gpu (h100: CUDA) or an mcu (stm32f746: C source)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT", help="TVM RPC tracker of a board profile (default: the "
                   "profile's rpc_tracker or $HWNAS_RPC_TRACKER)")
    p.add_argument("--out", required=True, help="new output folder")
    p.add_argument("--dynamic-batch", action="store_true", help="ONNX with a symbolic batch axis (TVM stays batch 1)")
    p.add_argument("--latency-model", help="a `nas profile` folder: report its prediction beside the measurement")
    p.add_argument("--repeats", type=_int_at_least(1), default=20, help="timed runs per format (default 20)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--tune-minutes", type=float, default=0.0,
                   help="first tune the subnet's TVM tasks for this long into the (device, space) database (default 0)")
    p.add_argument("--tuning-db", help="TVM tuning database folder (default: the cache's, see `nas tune-space`)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tune-space", help="tune a space's TVM layer workloads once into a persistent database")
    p.add_argument("space", help="a registered space (see `nas spaces`)")
    p.add_argument("--device", required=True, help="a cpu profile (tuned and measured on this host), e.g. host-cpu")
    p.add_argument("--minutes", required=True, type=float, help="wall-clock tuning budget in minutes (> 0)")
    p.add_argument("--resolutions", help="comma-separated input resolutions to tune (default: all the space's)")
    p.add_argument("--db", help="database folder (default $HWNAS_CACHE_DIR, else $XDG_CACHE_HOME/hwnas, else "
                                "~/.cache/hwnas, then tvm-db/PROFILE@V/SPACE@V)")
    p.add_argument("--check", type=_int_at_least(0), default=5,
                   help="random subnets whose database hit rate is reported afterwards (default 5)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default 0)")
    p.add_argument("--max-trials-per-task", type=_int_at_least(1), default=1000,
                   help="stop tuning a task after this many candidates (default 1000; 2: coverage only)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_tune_space)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NASError as err:
        print(f"nas {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `nas sample ... | head`
        sys.stderr.close()
        return 0

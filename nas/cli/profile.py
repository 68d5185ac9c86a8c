"""``nas profile``: build a device's latency model from measured subnets and layers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from search_spaces import get_space

from nas._config_io import PROFILE_RANGES as RANGES
from nas._config_io import check_host_port
from nas.cli._args import number_in


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("profile", help="build a device's latency model from measured subnets and layers")
    p.add_argument("--device", required=True,
                   help="a cpu profile: this host (host-cpu) or a board it reaches over TVM RPC (rpi4)")
    p.add_argument("--space", required=True, help="a registered space with a supernet (see `nas spaces`)")
    p.add_argument("--samples", type=number_in(RANGES["samples"]), default=200,
                   help="subnets to measure (default 200)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT",
                   help="TVM RPC tracker of a board profile (default: the profile's rpc_tracker or $HWNAS_RPC_TRACKER)")
    p.add_argument("--backend", choices=["onnxruntime", "tvm", "torch"], help="default: the profile's backend")
    p.add_argument("--threads", type=number_in(RANGES["threads"]),
                   help="intra-op threads (default: the profile's)")
    p.add_argument("--repeats", type=number_in(RANGES["repeats"]), default=20,
                   help="timed runs per measurement (default 20)")
    p.add_argument("--coverage", type=number_in(RANGES["coverage"]), default=2000,
                   help="extra random subnets whose layer workloads are measured too (default 2000)")
    p.add_argument("--seed", type=number_in(RANGES["seed"]), default=0, help="random seed (default 0)")
    p.add_argument("--chunk", type=number_in(RANGES["chunk"]), default=20,
                   help="modules built at a time, each timed beside a reference subnet (default 20)")
    p.add_argument("--no-drift-correction", action="store_true",
                   help="report raw latencies instead of scaling each item's ratio to the reference subnet")
    p.add_argument("--interval", type=number_in(RANGES["interval"]), default=0.9,
                   help="nominal coverage of the prediction intervals (default 0.9)")
    p.add_argument("--out", required=True, help="new output folder for the latency model and measurements")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    from nas.profiling.device import ProfileSettings, profile_device, render_report

    settings = ProfileSettings(samples=args.samples, coverage=args.coverage, backend=args.backend,
                               threads=args.threads, repeats=args.repeats, seed=args.seed, chunk=args.chunk,
                               drift_correction=not args.no_drift_correction, interval=args.interval,
                               rpc_tracker=check_host_port(args.rpc_tracker, "--rpc-tracker"))
    report = profile_device(get_space(args.space), args.device, Path(args.out), settings=settings,
                            progress=not args.no_progress)
    print(json.dumps(report.to_json(), indent=2) if args.json else render_report(report, Path(args.out)))
    return 0

"""``nas export``: one subnet as files: torch state dict, ONNX, TVM library (parity-checked), and with
``--quantize`` an int8 ONNX model beside them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas._config_io import REPEATS, check_host_port
from nas.cli._args import float_in, int_in, load_arch_json, number_in, stderr_log

MAX_TUNE_MINUTES = 10_080  # a week


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="one subnet as files: torch state dict, ONNX, TVM library "
                                             "(parity-checked)")
    p.add_argument("--job", help="take the arch of a search job's trial (with --trial)")
    p.add_argument("--trial", type=int_in(0, 1_000_000_000), help="the trial number (see `nas pareto JOB`)")
    p.add_argument("--storage", default="sqlite:///nas.db", help="the job's Optuna storage URL (default sqlite:///nas.db)")
    p.add_argument("--arch", help="JSON object or @FILE, as for `describe` (instead of --job)")
    p.add_argument("--space", help="the arch's space (default: the checkpoint's); a co-design space such as "
                                   "tiny_mbv3+hw(zcu104) exports the network and writes accelerator.toml beside it")
    p.add_argument("--checkpoint", help="a `nas train` output folder (default: a --job's own checkpoint, else a "
                                        "freshly initialised supernet)")
    p.add_argument("--format", default="torch,onnx,tvm", help="comma-separated subset of torch,onnx,tvm (default all)")
    p.add_argument("--device", default="host-cpu",
                   help="profile to build the TVM library for: host-cpu (default, tuned DB, measured here), a board "
                        "(rpi4: cross-built, measured over RPC), a gpu (h100: CUDA) or an mcu (stm32f746: C source)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT", help="TVM RPC tracker of a board profile (default: the "
                   "profile's rpc_tracker or $HWNAS_RPC_TRACKER)")
    p.add_argument("--out", required=True, help="new output folder")
    p.add_argument("--dynamic-batch", action="store_true", help="ONNX with a symbolic batch axis (TVM stays batch 1)")
    p.add_argument("--latency-model", help="a `nas profile` folder: report its prediction beside the measurement")
    p.add_argument("--repeats", type=number_in(REPEATS), default=20, help="timed runs per format (default 20)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--tune-minutes", type=float_in(0, MAX_TUNE_MINUTES), default=0.0,
                   help="first tune the subnet's TVM tasks for this long into the (device, space) database; with "
                        "--quantize (tvm format, this host), the int8 build's own tasks for as long again "
                        "(default 0)")
    p.add_argument("--tuning-db", help="TVM tuning database folder (default: the cache's, see `nas tune-space`)")
    p.add_argument("--quantize", nargs="?", const="policy", metavar="policy|int8",
                   help="also write model.int8.onnx (post-training int8, QDQ; implies the onnx format): 'policy' (the "
                        "default when given alone) takes the arch's quantization policy (a trial of a +q job, or "
                        "--space SPACE+q with q_<block> settings), 'int8' puts every block in int8. The report adds "
                        "float vs int8 top-1 (with a checkpoint), latency of both, sizes, and with the tvm format what "
                        "TVM does with the int8 model")
    p.add_argument("--calibration-method", metavar="METHOD", help="int8 calibration: minmax, entropy or percentile (default: the "
                                                "job's [quantization] method, else minmax)")
    p.add_argument("--calibration-samples", type=int_in(1, 100_000), metavar="N",
                   help="int8 calibration inputs (at most 100000): training images of the checkpoint, else "
                        "seeded random inputs (default: the job's [quantization] samples, else 256)")
    return p


def run(args: argparse.Namespace) -> int:
    from nas.export.from_job import render_summary, resolve_and_export

    report = resolve_and_export(
        out=Path(args.out), formats=args.format, job=args.job, trial=args.trial, storage=args.storage,
        arch_obj=load_arch_json(args.arch) if args.arch is not None else None, space=args.space,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None, device=args.device,
        dynamic_batch=args.dynamic_batch, latency_model=Path(args.latency_model) if args.latency_model else None,
        repeats=args.repeats, tune_minutes=args.tune_minutes,
        tuning_db=Path(args.tuning_db) if args.tuning_db else None,
        rpc_tracker=check_host_port(args.rpc_tracker, "--rpc-tracker"),
        quantize=args.quantize, calibration_method=args.calibration_method,
        calibration_samples=args.calibration_samples, log=stderr_log(args.quiet))
    print(json.dumps(report.to_json(), indent=2) if args.json else render_summary(report, Path(args.out)))
    return 0

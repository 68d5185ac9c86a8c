"""``nas eval``: top-1 accuracy of one subnet of a trained supernet (BN recalibrated)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.cli._args import load_arch_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="top-1 accuracy of one subnet of a trained supernet (BN recalibrated)")
    p.add_argument("--checkpoint", required=True, help="a `nas train` output directory or its checkpoint.pt")
    p.add_argument("--arch", required=True, help="JSON object or @FILE, as for `describe`")
    p.add_argument("--data", help="dataset to evaluate on (default: the one it was trained on)")
    p.add_argument("--json", action="store_true", help='print {"top1": ..., "loss": ...}')
    return p


def run(args: argparse.Namespace) -> int:
    from nas.training.evaluation import evaluate_checkpoint

    result = evaluate_checkpoint(Path(args.checkpoint), load_arch_json(args.arch), data=args.data)
    if args.json:
        print(json.dumps({"top1": result.top1, "loss": result.loss, "n": result.n,
                          "bn_recalibrated": result.bn_recalibrated, "cached": result.cached,
                          "measured_at": result.measured_at}))
    else:
        cached = f", cached from {result.measured_at}" if result.cached else ""
        print(f"top1 {result.top1:.2%}  loss {result.loss:.4f}  ({result.n} images, BN recalibrated{cached})")
    return 0

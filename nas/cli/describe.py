"""``nas describe``: MACs, params, peak memory and layer table of one architecture."""

from __future__ import annotations

import argparse
import json

from search_spaces import get_space

from nas.cli._args import load_arch_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("describe", help="MACs, params, peak memory and layer table of one architecture")
    p.add_argument("space", help="a registered space (see `nas spaces`)")
    p.add_argument("--arch", required=True,
                   help='JSON object or @FILE: {"ks": [...], "e": [...], "d": [...], "r": R} or {param: value}')
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--device", action="append", metavar="PROFILE",
                   help="add this device's metrics with provenance (repeatable; see `nas devices`)")
    return p


def run(args: argparse.Namespace) -> int:
    from nas.report.describe import describe_arch, render_text

    space = get_space(args.space)
    arch = space.parse(load_arch_json(args.arch))
    info = describe_arch(space, arch, devices=args.device or ())
    print(json.dumps(info, indent=2) if args.json else render_text(info))
    return 0

"""``nas devices``: list the device profiles."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("devices", help="list the device profiles")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return p


def run(args: argparse.Namespace) -> int:
    from hw_profiles import get_profile, list_profiles

    profiles = [get_profile(name) for name in list_profiles()]
    if args.json:
        print(json.dumps([{"name": p.name, "version": p.version, "kind": p.kind, "description": p.description}
                          for p in profiles], indent=2))
    else:
        for p in profiles:
            print(f"{p.name:<12} {p.kind:<5} v{p.version:<3} {p.description}")
    return 0

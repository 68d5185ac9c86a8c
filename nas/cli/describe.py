"""``nas describe``: MACs, params, peak memory and layer table of one architecture, and device profiles
(with ``--device`` alone: each profile, and for an fpga one its accelerator's template and resources)."""

from __future__ import annotations

import argparse
import json

from search_spaces import get_space

from nas.cli._args import CLIInputError, load_arch_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("describe", help="MACs, params, peak memory and layer table of one architecture; "
                                               "a device profile and its accelerator")
    p.add_argument("space", nargs="?", help="a registered space (see `nas spaces`), e.g. tiny_mbv3 or "
                                            "tiny_mbv3+hw(zcu104)")
    p.add_argument("--space", dest="space_option", metavar="SPACE", help="the space, as an option")
    p.add_argument("--arch", help='JSON object or @FILE: {"ks": [...], "e": [...], "d": [...], "r": R} or '
                                  '{param: value} (required with a space)')
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--device", action="append", metavar="PROFILE",
                   help="add this device's metrics with provenance (repeatable; see `nas devices`): a name or a "
                        "profile file (e.g. an export's accelerator.toml); alone, describe the profile")
    p.set_defaults(describe_parser=p)
    return p


def _space_name(args: argparse.Namespace) -> str | None:
    if args.space and args.space_option and args.space != args.space_option:
        raise CLIInputError(f"two spaces given: {args.space!r} and --space {args.space_option!r}")
    return args.space or args.space_option


def run(args: argparse.Namespace) -> int:
    from nas.report.describe import describe_arch, render_text

    name = _space_name(args)
    if name is None:
        if args.arch is not None or not args.device:
            args.describe_parser.error("give a space and --arch, or --device PROFILE to describe a device")
        from nas.report._accelerator import describe_devices, render_devices

        info = describe_devices(args.device)
        print(json.dumps(info, indent=2) if args.json else render_devices(info))
        return 0
    if args.arch is None:
        args.describe_parser.error("the following arguments are required: --arch")
    space = get_space(name)
    arch = space.parse(load_arch_json(args.arch))
    info = describe_arch(space, arch, devices=args.device or ())
    print(json.dumps(info, indent=2) if args.json else render_text(info))
    return 0

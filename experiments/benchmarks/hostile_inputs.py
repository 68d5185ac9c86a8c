"""Benchmark: the hostile-input and fault suite (``tests/hostile``) as figures.

Runs the suite (every marker, in a subprocess) with ``HWNAS_HOSTILE_REPORT`` set, so its harness
(``tests/hostile/conftest.py``) writes how many cases it tried per CLI command, per file loader
(Hypothesis examples included), per fault (kill-and-resume runs per searcher, two drivers on one
job, kills of train and export) and per server command, and how many broke the promise (one line,
exit 2, no traceback, nothing written; for faults: nothing lost or evaluated twice). Targets: 0
broken everywhere.

    python experiments/benchmarks/hostile_inputs.py [--out results/hostile_inputs.json] [-k EXPR]

Prints one JSON object (and writes it with ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def machine() -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "loadavg_1min_at_end": load}


def run_suite(select: str | None) -> tuple[dict, dict]:
    """``(tally, pytest summary)`` of one run of tests/hostile."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "tally.json"
        cmd = [sys.executable, "-m", "pytest", "tests/hostile", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
        if select:
            cmd += ["-k", select]
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HWNAS_HOSTILE_REPORT": str(report)},
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
        tally = json.loads(report.read_text()) if report.exists() else {}
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", last)}
    return tally, {"exit_code": done.returncode, "summary": last, "seconds": round(seconds, 1), **counts}


def totals(tally: dict) -> dict:
    """Per kind (cli, loader, fault, network): how many names, cases and broken cases."""
    out: dict = defaultdict(lambda: {"names": 0, "cases": 0, "broken": 0})
    for key, entry in tally.items():
        kind = key.split(":", 1)[0]
        out[kind]["names"] += 1
        out[kind]["cases"] += entry["cases"]
        out[kind]["broken"] += entry["broken"]
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("-k", dest="select", help="pytest -k expression (default: the whole suite)")
    args = parser.parse_args()
    tally, pytest_run = run_suite(args.select)
    result = {"benchmark": "hostile_inputs", "targets": {"broken": 0, "lost": 0, "duplicated": 0},
              "totals": totals(tally), "per_name": tally, "pytest": pytest_run,
              "note": "cases counted by tests/hostile/conftest.py; faults count runs (each checks lost and "
                      "duplicated evaluations)", "machine": machine()}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    sys.exit(0 if pytest_run["exit_code"] == 0 else 1)


if __name__ == "__main__":
    main()

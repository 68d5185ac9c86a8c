"""Benchmark: how long does ``nas export`` take for torch + ONNX + TVM (untuned)?

Exports one random ``ofa_mbv3`` subnet at 160 px and one random ``tiny_mbv3`` subnet, as
``nas export --space S --arch ... --format torch,onnx,tvm`` does (random-init weights, BN fit to
seeded random inputs), each into a fresh temporary folder, and reports the wall time of the whole
export (``export_s``) and of each step (extract, torch, onnx, tvm, latency timing), beside the
parity figures and measured latencies of the report, and the machine.

    python experiments/benchmarks/export_time.py [--seed 0] [--repeats 20]

With ``--tuning-db DIR`` each subnet is also exported (TVM only) compiled from the database
``DIR/<space>`` and reported under ``from_tuned_db`` (``export_s``, schedule provenance).

Prints one JSON object: {"subnets": {name: {"export_s": ..., "steps_s": {...}, ...}}, "machine": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import nas
from nas.export.from_job import resolve_and_export

SUBNETS = (("ofa_mbv3@160", "ofa_mbv3", 160), ("tiny_mbv3", "tiny_mbv3", None))


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count()}


def bench_tuned(space_name: str, arch, repeats: int, tuning_db: Path) -> dict:
    """``export_s`` of a TVM-only export compiled from a tuning database (``nas tune-space``)."""
    with tempfile.TemporaryDirectory(prefix="hwnas-export-bench-") as tmp:
        start = time.perf_counter()
        report = resolve_and_export(out=Path(tmp) / "out", formats="tvm", arch_obj=arch.to_dict(), space=space_name,
                                    repeats=repeats, tuning_db=tuning_db).to_json()
        wall = time.perf_counter() - start
    return {"export_s": round(wall, 2), "tvm_s": report["steps_s"].get("tvm_s"), "tvm_schedule": report["tvm_schedule"],
            "tuning": report["tuning"], "tvm_latency_ms": round(report["formats"]["tvm"]["latency_ms"]["value"], 3)}


def bench(space_name: str, resolution: int | None, seed: int, repeats: int, tuning_db: Path | None = None) -> dict:
    space = nas.get_space(space_name)
    arch = space.sample(np.random.default_rng(seed))
    if resolution is not None:
        arch = space.with_resolution(arch, resolution)
    with tempfile.TemporaryDirectory(prefix="hwnas-export-bench-") as tmp:
        start = time.perf_counter()
        report = resolve_and_export(out=Path(tmp) / "out", formats="torch,onnx,tvm", arch_obj=arch.to_dict(),
                                    space=space_name, repeats=repeats).to_json()
        wall = time.perf_counter() - start
        sizes = {fmt: (Path(tmp) / "out" / entry["file"]).stat().st_size for fmt, entry in report["formats"].items()}
    return {
        "arch_id": arch.arch_id, "input_shape": report["input_shape"], "export_s": round(wall, 2),
        "steps_s": report["steps_s"],
        "parity_max_abs_diff": {f: e["parity"]["max_abs_diff"] for f, e in report["formats"].items()},
        "output_max_abs": report["formats"]["torch"]["parity"]["output_max_abs"],
        "latency_ms": {e["backend"]: {"median": round(e["latency_ms"]["value"], 3),
                                      "iqr": round(e["latency_ms"]["spread"], 3)}
                       for e in report["formats"].values()},
        "file_bytes": sizes, "threads": report["threads"],
        **({"from_tuned_db": bench_tuned(space_name, arch, repeats, tuning_db / space_name)} if tuning_db else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--tuning-db", type=Path,
                        help="folder with one tuning database per space (DIR/SPACE, from `nas tune-space --db`): also "
                             "report export_s of a TVM export compiled from it")
    args = parser.parse_args()
    results = {label: bench(space, resolution, args.seed, args.repeats, args.tuning_db)
               for label, space, resolution in SUBNETS}
    print(json.dumps({"subnets": results, "tvm": "untuned default schedule (kernels.tvm.build)",
                      "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: TVM with a space-level MetaSchedule database against onnxruntime, untuned TVM and torch.

For ofa_mbv3 at 160 px, tiny_mbv3 at 32 px and tiny_vit at 28 px: ``nas tune-space`` (one resolution) with the given
budget into a fresh database, then 5 seeded random subnets per space, each compiled from the
database (``tvm_tuned``) and with the default schedule only (``tvm_untuned``), and timed beside
onnxruntime (no spinning) and torch (denormals flushed), interleaved in one process with the same
thread count (``kernels.timing.measure``: median and IQR). torch is timed right after, alone (same
process and threads): interleaved, its busy-waiting OpenMP threads slowed tuned TVM ~70x. Outputs
are parity-checked. ``--keep-db DIR`` keeps the tuning databases (DIR/<space>).
Run it alone on the machine (e.g. under ``flock /tmp/hwnas-bench.lock``).

    python experiments/benchmarks/tvm_vs_ort.py [--minutes 10] [--tiny-minutes 4] [--repeats 30]

Prints one JSON object: {"spaces": {...}, "subnets": [...], "median_ratio_tvm_tuned_over_ort": ...,
"machine": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

SPACES = (("ofa_mbv3", 160, "minutes"), ("tiny_mbv3", 32, "tiny_minutes"), ("tiny_vit", 28, "tiny_minutes"))
N_SUBNETS = 5


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count()}


def _ms(timing) -> dict:
    return {"median": round(timing.median_s * 1e3, 3), "iqr": round(timing.iqr_s * 1e3, 3)}


def bench_space(name: str, r: int, minutes: float, repeats: int, work: Path, db: Path) -> tuple[dict, list]:
    from kernels.tvm import build as tvm_build, db as tvm_db
    from kernels.onnx_export import export_onnx
    from kernels.runners import OrtFileRunner, TorchRunner
    from kernels.timing import measure
    from nas.export.tuning import tune_space
    from search_spaces import get_space
    from supernets import create_supernet
    from supernets.testing import enliven

    report = tune_space(name, device="host-cpu", minutes=minutes, resolutions=[r], db=db, check=N_SUBNETS,
                        progress=False).to_json()
    space = get_space(name)
    threads = report["threads"]
    target = tvm_build.host_target(threads)
    database = tvm_db.open_database(db, create=False)
    rng = np.random.default_rng(1)
    rows = []
    for i in range(N_SUBNETS):
        arch = space.with_resolution(space.sample(rng), r)
        supernet = create_supernet(name, seed=i)
        enliven(supernet, arch, seed=i)
        module = supernet.extract(arch).eval()
        x = torch.randn((1, *space.input_shape(arch)), generator=torch.Generator().manual_seed(i))
        path = export_onnx(module, x, work / f"{name}-{i}.onnx")
        tuned, stats = tvm_db.compile_onnx_tuned(path, target, database, default_times=tvm_db.load_default_times(db))
        untuned, _ = tvm_db.compile_onnx_tuned(path, target, None)
        models = {"tvm_tuned": tvm_build.TvmModel(tuned, threads=threads),
                  "tvm_untuned": tvm_build.TvmModel(untuned, threads=threads)}
        with torch.no_grad():
            reference = module(x).numpy()
        parity = {k: float(np.abs(m.run(x.numpy()) - reference).max()) for k, m in models.items()}
        xs = {k: m.tensor(x.numpy()) for k, m in models.items()}
        ort = OrtFileRunner(path, x.numpy(), threads=threads, spin=False)
        torch.set_flush_denormal(True)
        fns = {"tvm_tuned": lambda: models["tvm_tuned"].invoke(xs["tvm_tuned"]),
               "tvm_untuned": lambda: models["tvm_untuned"].invoke(xs["tvm_untuned"]), "ort": ort}
        timings = measure(fns, warmup=5, repeats=repeats, threads=threads)
        # torch alone: its OpenMP threads busy-wait after each call, and interleaved with them a tuned
        # TVM model (parallel loops everywhere) measured 7.9 ms instead of 0.11 ms (tiny_mbv3)
        timings.update(measure({"torch": TorchRunner(module, x, threads=threads)}, warmup=5, repeats=repeats,
                               threads=threads))
        rows.append({"space": name, "r": r, "arch_id": arch.arch_id, **{f"{k}_ms": _ms(t) for k, t in timings.items()},
                     "hit_rate": stats.hit_rate, "flops_coverage": round(stats.flops_coverage, 4),
                     "tasks": stats.tasks_total, "parity_max_abs_diff": parity,
                     "output_max_abs": float(np.abs(reference).max()),
                     "ratio_tvm_tuned_over_ort": round(timings["tvm_tuned"].median_s / timings["ort"].median_s, 3)})
    summary = {k: report[k] for k in ("tasks", "workloads", "tuning_minutes", "extract_s", "hit_rate_mean",
                                      "hit_rate_min", "flops_coverage_mean")}
    summary["tuning"] = report["tuning"]
    summary["threads"] = threads
    return summary, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="tune-space budget for ofa_mbv3 (default 10)")
    parser.add_argument("--tiny-minutes", type=float, default=4.0, help="tune-space budget for tiny_mbv3 and for tiny_vit (default 4 each)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--only", choices=[s[0] for s in SPACES], help="benchmark one space only")
    parser.add_argument("--keep-db", type=Path, help="write the tuning databases to DIR/<space> (kept)")
    args = parser.parse_args()
    spaces, subnets = {}, []
    with tempfile.TemporaryDirectory(prefix="hwnas-tvm-vs-ort-") as tmp:
        for name, r, budget in SPACES:
            if args.only and name != args.only:
                continue
            db = (args.keep_db / name) if args.keep_db else Path(tmp) / f"db-{name}"
            summary, rows = bench_space(name, r, getattr(args, budget), args.repeats, Path(tmp), db)
            spaces[name] = {"resolution": r, **summary}
            subnets += rows
    ratios = [row["ratio_tvm_tuned_over_ort"] for row in subnets]
    by_space = {name: statistics.median(row["ratio_tvm_tuned_over_ort"] for row in subnets if row["space"] == name)
                for name in spaces}
    print(json.dumps({"spaces": spaces, "subnets": subnets,
                      "tuning_minutes": {name: s["tuning_minutes"] for name, s in spaces.items()},
                      "median_ratio_tvm_tuned_over_ort": statistics.median(ratios) if ratios else None,
                      "median_ratio_tvm_tuned_over_ort_by_space": by_space,
                      "timing": {"protocol": "kernels.timing.measure, warmup 5: tvm_tuned, tvm_untuned, ort interleaved; "
                                            "torch right after, alone", "repeats": args.repeats},
                      "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()

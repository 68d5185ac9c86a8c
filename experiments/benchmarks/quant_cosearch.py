"""Benchmark: quantization co-search, int8 speed on this CPU, and the accuracy PTQ costs.

Three parts (``--parts``, comma-separated; all by default):

- ``joint``: on tiny_mbv3 / mnist-mini from a trained checkpoint (``--checkpoint``, a ``nas train``
  folder), objectives accuracy (measured, of the deployed format), host-cpu latency (measured with
  onnxruntime on the model in its format) and stm32f746 flash, constraint stm32f746 SRAM <= 320 KB.
  Joint search over ``tiny_mbv3+q`` (arch x per-block precision) against the sequential baseline
  (search float32 on ``tiny_mbv3``, then quantize its front uniformly to int8), the same algorithm,
  budget and seed (:func:`nas.jobs.sequential.sequential_baseline`), for ``--seeds`` seeds: normalised
  hypervolume of each (both fronts on one scale), median over seeds.
- ``latency``: 5 seeded ofa_mbv3 subnets at 160 px (random-init weights, BN statistics randomised:
  latency does not depend on them): float vs int8 (QDQ, per-channel, 16 random calibration inputs)
  with onnxruntime, interleaved in one process (``kernels.timing.measure``), file sizes, and the same
  two models compiled by TVM with the default schedule (untuned) beside them.
- ``accuracy``: float vs int8 top-1 on the validation split for 10 seeded tiny_mbv3 subnets of the
  checkpoint (uniform int8 policy, 256 calibration images), and the PTQ wall time per subnet.

    python experiments/benchmarks/quant_cosearch.py --checkpoint runs/tiny [--budget 40] [--seeds 3] [--keep DIR]

Prints one JSON object with ``joint_hv``, ``sequential_hv``, ``ratio`` (medians), per-seed detail, the
latency and accuracy parts, and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIG = """
[search]
space = "tiny_mbv3+q"
algorithm = "{algorithm}"
budget = {budget}
seed = {seed}
storage = "sqlite:///{db}"
[accuracy]
checkpoint = "{checkpoint}"
[quantization]
samples = 256
[[objectives]]
name = "accuracy"
metric = "accuracy"
direction = "maximize"
[[objectives]]
name = "latency_ms"
metric = "host-cpu.latency_ms"
[[objectives]]
name = "flash_kb"
metric = "stm32f746.flash_kb"
[[constraints]]
metric = "stm32f746.peak_sram_kb"
op = "<="
bound = 320
"""


def machine() -> dict:
    from kernels.quantize import cpu_isa

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "cpu_isa": cpu_isa(), "loadavg_1min_at_end": load}


def joint_vs_sequential(checkpoint: Path, budget: int, seeds: int, algorithm: str, work: Path) -> dict:
    from nas.jobs.config import SearchConfig
    from nas.jobs.evaluator import Evaluator
    from nas.jobs.search import search
    from nas.jobs.sequential import sequential_baseline

    runs = []
    for seed in range(seeds):
        path = work / f"joint{seed}.toml"
        path.write_text(CONFIG.format(algorithm=algorithm, budget=budget, seed=seed, db=work / f"s{seed}.db",
                                      checkpoint=checkpoint.resolve()))
        config = SearchConfig.from_toml(path)
        space, objectives, constraints, catalog, extra = config.build()
        start = time.perf_counter()
        joint = search(space, objectives, constraints, algorithm=algorithm, budget=budget, seed=seed,
                       storage=config.search.storage, job="joint", catalog=catalog, config_extra=extra,
                       progress=False)
        joint_s = time.perf_counter() - start
        evaluator = Evaluator(space, objectives, constraints, catalog=catalog)
        start = time.perf_counter()
        seq = sequential_baseline(config, joint, evaluator=evaluator, budget=budget, seed=seed,
                                  storage=config.search.storage, progress=False)
        front = joint.pareto()
        runs.append({"seed": seed, **{k: v for k, v in seq.to_json().items() if k != "sequential_front"},
                     "joint_s": round(joint_s, 1), "sequential_s": round(time.perf_counter() - start, 1),
                     "joint_front_formats": sorted(front["accuracy.precision"].value_counts().to_dict().items())})
        print(f"seed {seed}: joint {seq.joint_hypervolume} sequential {seq.sequential_hypervolume}", file=sys.stderr)
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    joint_hv, seq_hv = med("joint_hypervolume"), med("sequential_hypervolume")
    return {"joint_hv": joint_hv, "sequential_hv": seq_hv, "ratio": round(joint_hv / seq_hv, 4) if seq_hv else None,
            "ratio_per_seed": [r["ratio"] for r in runs], "budget": budget, "algorithm": algorithm, "runs": runs,
            "target": "joint >= 1.05x sequential"}


def _subnets(name: str, resolution: int, n: int):
    import torch

    from search_spaces import get_space
    from supernets import create_supernet

    space = get_space(name)
    supernet = create_supernet(name, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(n):
        arch = space.with_resolution(space.sample(rng), resolution)
        yield arch, supernet.extract(arch).eval(), torch.randn(1, *space.input_shape(arch))


def int8_latency(repeats: int, work: Path, tvm: bool) -> dict:
    from kernels.onnx_export import export_onnx
    from kernels.quantize import quantize_onnx
    from kernels.runners import OrtFileRunner, make_runner
    from kernels.timing import measure

    rows = []
    for i, (arch, module, x) in enumerate(_subnets("ofa_mbv3", 160, 5)):
        fp32 = export_onnx(module, x, work / f"ofa{i}.onnx")
        calib = np.random.default_rng(i).standard_normal((16, *x.shape[1:])).astype(np.float32)
        q = quantize_onnx(fp32, work / f"ofa{i}.int8.onnx", calib)
        runners = {"ort_fp32": OrtFileRunner(fp32, x.numpy(), threads=2, spin=False),
                   "ort_int8": OrtFileRunner(q.path, x.numpy(), threads=2, spin=False)}
        if tvm:
            runners["tvm_fp32"] = make_runner("tvm", module, x, threads=2)
            runners["tvm_int8"] = make_runner("tvm", q, x.numpy(), threads=2)
        t = measure(runners, warmup=5, repeats=repeats, threads=2, warm_calls=1)
        ms = {k: {"median": round(v.median_ms, 3), "iqr": round(v.iqr_ms, 3)} for k, v in t.items()}
        row = {"arch_id": arch.arch_id, "ms": ms, "ort_int8_over_fp32": round(t["ort_int8"].median_ms /
                                                                                t["ort_fp32"].median_ms, 3),
               "size_ratio": round(q.path.stat().st_size / fp32.stat().st_size, 3)}
        if tvm:
            row["tvm_int8_over_fp32"] = round(t["tvm_int8"].median_ms / t["tvm_fp32"].median_ms, 3)
        rows.append(row)
        print(f"ofa {i}: {row['ort_int8_over_fp32']} {row.get('tvm_int8_over_fp32')}", file=sys.stderr)
    summary = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k.endswith("fp32") or k == "size_ratio"}
    return {"space": "ofa_mbv3", "resolution": 160, "threads": 2, "repeats": repeats, "subnets": rows,
            "median": summary, "targets": {"ort_int8_over_fp32": "<= 0.6", "size_ratio": "~0.25"}}


def accuracy_cost(checkpoint: Path, n: int) -> dict:
    from nas.training.evaluation import CheckpointEvaluator
    from nas.training.quantized import QuantizedEvaluator, QuantSettings
    from search_spaces import QuantPolicy, get_space

    space = get_space("tiny_mbv3+q")
    evaluator = QuantizedEvaluator(CheckpointEvaluator(checkpoint), space, QuantSettings(samples=256))
    evaluator.cache.path = None  # measure, do not read a previous run's figures
    rng = np.random.default_rng(7)
    rows = []
    for _ in range(n):
        arch = space.combine(space.base.sample(rng), QuantPolicy.uniform(space.labels, "int8"))
        start = time.perf_counter()
        r = evaluator(arch)
        rows.append({"arch_id": arch.arch_id, "float_top1": r.float_top1, "int8_top1": r.top1,
                     "drop_points": round(100 * r.drop, 2), "agreement": r.agreement, "ptq_s": r.ptq_s,
                     "wall_s": round(time.perf_counter() - start, 2)})
    drops = [r["drop_points"] for r in rows]
    return {"space": "tiny_mbv3", "n": n, "val_images": evaluator(arch).n, "subnets": rows,
            "median_drop_points": statistics.median(drops), "max_drop_points": max(drops),
            "median_ptq_s": statistics.median(r["ptq_s"] for r in rows), "target": "median drop <= 1 point"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="a `nas train` folder of tiny_mbv3 (joint, accuracy)")
    parser.add_argument("--parts", default="joint,latency,accuracy")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--algorithm", default="nsga2")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-tvm", action="store_true", help="skip the TVM columns of the latency part")
    parser.add_argument("--keep", type=Path, help="keep the search configs and SQLite stores in this new folder")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if {"joint", "accuracy"} & set(parts) and args.checkpoint is None:
        parser.error("the joint and accuracy parts need --checkpoint (a `nas train` folder of tiny_mbv3)")
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="quant-bench-") as tmp:
        work = Path(tmp)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=False)
            work = args.keep.resolve()
        if "accuracy" in parts:
            out["accuracy"] = accuracy_cost(args.checkpoint, 10)
        if "latency" in parts:
            out["latency"] = int8_latency(args.repeats, work, tvm=not args.no_tvm)
        if "joint" in parts:
            out["joint"] = joint_vs_sequential(args.checkpoint, args.budget, args.seeds, args.algorithm, work)
    out["machine"] = machine()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

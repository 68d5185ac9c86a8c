"""Benchmark: how well a device's latency model predicts measured latency on this CPU.

Runs ``nas profile`` (the same code path, through ``nas.profiling.device.profile_device``) on ``ofa_mbv3``
(all four resolutions, 128-224 px) with onnxruntime: ``--samples`` measured subnets (>= 300), an
80/20 fit/held-out split, every distinct layer workload measured once, and the held-out subnets
measured a second time (the repeatability ceiling); measurements are chunked, interleaved with a
reference subnet and drift-corrected, as ``nas profile`` does by default. Then times every analytic cost model on the
same random archs, cold (new model, empty caches), including ``space.layers``.

Prints JSON: ``kernel_level``, ``arch_level``, ``macs_proxy`` (each ``within_10pct``, ``spearman``,
``rmse_ms``), ``repeatability_within_10pct``, ``cost_model_archs_per_s`` ({model: archs/s}), the
latency range, the measurement's spread and the machine.

    python experiments/benchmarks/latency_predictor.py [--samples 300] [--threads N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from hw_profiles import cost_model_for, get_profile, macs
from nas.profiling.latency_model import LatencyModel
from nas.profiling.device import ProfileSettings, profile_device
from search_spaces import get_space


def archs_per_s(fn, archs, repeats: int = 3) -> float:
    """Median over ``repeats`` cold passes of ``fn(archs)``, in archs per second."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(archs)
        rates.append(len(archs) / (time.perf_counter() - start))
    return round(float(np.median(rates)), 1)


def cost_model_throughput(space, latency_model: LatencyModel, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n)]
    profiles = {"mcu_stm32f746": "stm32f746", "fpga_zcu104": "zcu104", "gpu_roofline_a100": "a100"}

    def analytic(profile_name):
        def run(batch):
            model = cost_model_for(get_profile(profile_name))  # cold: a fresh per-layer cache
            for arch in batch:
                model.metrics(space.layers(arch))
        return run

    rates = {"macs_params": archs_per_s(lambda batch: [macs(space.layers(a)) for a in batch], archs)}
    rates.update({key: archs_per_s(analytic(name), archs) for key, name in profiles.items()})
    for predictor in ("kernel_level", "arch_level"):
        rates[f"latency_model_{predictor}"] = archs_per_s(
            lambda batch, p=predictor: latency_model.predict(batch, predictor=p), archs)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="ofa_mbv3")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None, help="default: the host-cpu profile's (every core)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--throughput-archs", type=int, default=2000)
    parser.add_argument("--out", help="keep the profile folder here (default: a temporary folder)")
    parser.add_argument("--no-drift-correction", action="store_true", help="raw (interleaved) latencies")
    args = parser.parse_args()

    space = get_space(args.space)
    settings = ProfileSettings(samples=args.samples, threads=args.threads, repeats=args.repeats,
                               backend=args.backend, seed=args.seed, drift_correction=not args.no_drift_correction)
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "profile"
        report = profile_device(space, "host-cpu", out, settings=settings, progress=True).to_json()
        latency_model = LatencyModel.load(out)
    held = report["held_out"]
    result = {
        "benchmark": "latency_predictor",
        **{name: {"within_10pct": round(held[name]["within_10pct"], 4), "spearman": round(held[name]["spearman"], 4),
                  "rmse_ms": round(held[name]["rmse"], 4)} for name in ("kernel_level", "arch_level", "macs_proxy")},
        "repeatability_within_10pct": round(report["repeatability"]["within_10pct"], 4),
        "repeatability_spearman": round(report["repeatability"]["spearman"], 4),
        "target_within_10pct": 0.95,
        "cost_model_archs_per_s": cost_model_throughput(space, latency_model, args.throughput_archs, args.seed + 1),
        **{k: report[k] for k in ("device", "backend", "threads", "space", "samples", "n_fit", "n_held_out", "drift",
                                  "layer_workloads", "latency_ms", "median_iqr_pct", "repeats", "wall_s", "machine")},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

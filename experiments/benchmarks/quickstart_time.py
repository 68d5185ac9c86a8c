"""Benchmark: how long does the whole quickstart (``nas run experiments/quickstart.toml``) take, and
what does it deliver?

Runs the pipeline from scratch into a fresh temporary folder (or ``--out``, which must be new),
exactly as ``nas run CONFIG --out DIR`` does, with the console on stderr, and reports the wall time
of each stage and in total (``total_s``, the sum of the stages as ``summary.json`` records it;
``run_quickstart_wall_s``, the wall time of ``run_pipeline`` under the key earlier results use, adds
the set-up between them; target: 600 s on 2 CPU cores), the front size, the hypervolume against the
random-search baseline at equal budget, the exported subnet's measured latencies beside the
latency model's prediction (each with provenance), the check of the model on a few front members,
and the machine (with its load average, since this host is shared).

    python experiments/benchmarks/quickstart_time.py [--config experiments/quickstart.toml] [--out DIR]

Prints one JSON object: {"stages_s": {...}, "total_s": ..., "front_size": ..., "hypervolume": {...},
"best": {...}, "machine": {...}, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from nas.pipeline.run import run_pipeline
from nas.pipeline.config import PipelineConfig

TARGET_S = 600.0
REPO = Path(__file__).resolve().parents[2]


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count()}


def bench(config_path: Path, out: Path) -> dict:
    config = PipelineConfig.from_toml(config_path)
    load_before = os.getloadavg()
    started = time.perf_counter()
    summary = run_pipeline(config, out, progress=True, echo=lambda line: print(line, file=sys.stderr, flush=True))
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    best, hv = summary["best"], summary["search"]["hypervolume"]
    predicted = best["latency_ms"]["predicted"]
    measured = best["latency_ms"]["measured"]
    same_backend = [fmt for fmt, m in measured.items() if m["backend"] == predicted["backend"]]
    error = {fmt: round((predicted["value"] - measured[fmt]["value"]) / measured[fmt]["value"] * 100, 1)
             for fmt in same_backend}
    return {
        "benchmark": "quickstart_time", "config": str(config_path.resolve().relative_to(REPO))
        if config_path.resolve().is_relative_to(REPO) else str(config_path),
        "stages_s": {name: s["wall_s"] for name, s in summary["stages"].items()},
        "stage_status": {name: s["status"] for name, s in summary["stages"].items()},
        "total_s": summary["total_s"], "run_quickstart_wall_s": round(wall, 1), "target_s": TARGET_S, "within_target": summary["total_s"] <= TARGET_S,
        "train_val_top1": summary["train"]["val_top1"],
        "latency_model": {"default_predictor": summary["profile"]["default_predictor"],
                          "held_out": summary["profile"]["held_out"][summary["profile"]["default_predictor"]],
                          "repeatability": summary["profile"]["repeatability"]},
        "search": {"algorithm": summary["search"]["algorithm"], "budget": summary["search"]["budget"],
                   "evaluations": summary["search"]["evaluations"],
                   "baseline_evaluations": summary["search"]["baseline_evaluations"]},
        "front_size": summary["front"]["size"],
        "hypervolume": {"search": hv["hypervolume"], "random_baseline": hv["baseline_hypervolume"],
                        "ratio": hv["ratio"], "baseline_front_size": hv["baseline_front_size"]},
        "front_latency_check": [{"trial": r["trial"], "predicted_ms": round(r["predicted_ms"]["value"], 4),
                                 "measured_ms": round(r["measured_ms"]["value"], 4), "error_pct": r["error_pct"]}
                                for r in summary["front"]["measured"]],
        "best": {"trial": best["trial"], "arch_id": best["arch_id"], "latency_budget_ms": best["latency_budget_ms"],
                 "objectives": best["objectives"], "predicted_latency_ms": predicted,
                 "measured_latency_ms": measured, "prediction_error_pct": error,
                 "parity_max_abs_diff": best["parity_max_abs_diff"]},
        "load_average_1m": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "experiments" / "quickstart.toml")
    parser.add_argument("--out", type=Path, help="a new folder to keep the run in (default: a temporary one)")
    args = parser.parse_args()
    if args.out is not None:
        if args.out.exists():
            parser.error(f"--out {args.out} exists; the benchmark times a run from scratch")
        result = bench(args.config, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="hwnas-quickstart-bench-") as tmp:
            result = bench(args.config, Path(tmp) / "run")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: network × accelerator co-design, joint against nested and sequential, and search speed.

Parts (``--parts``, comma-separated; all by default):

- ``modes``: tiny_mbv3 on mnist-mini from a trained checkpoint (``--checkpoint``, a ``nas train``
  folder) with the zcu104 accelerator searched (``tiny_mbv3+hw(zcu104)``): objectives accuracy
  (measured, float top-1 of the network), FPGA latency and energy (estimated, on each trial's own
  template) and DSP use; the device's DSP/BRAM bounds as hard constraints. The three modes of
  ``nas.jobs.codesign`` (joint, nested, sequential) at the same budget of accuracy evaluations, the
  same algorithm and seed, for ``--seeds`` seeds. Per seed the three fronts are normalised by the
  ideal and nadir of every feasible point of all three (reference 1.1), so their hypervolumes share a
  scale; medians over seeds as ``joint_hv``, ``nested_hv``, ``sequential_hv``. Also, at equal
  accuracy: for every sequential front member, the lowest latency and energy a joint front member
  reaches with at least its accuracy, as ratios sequential / joint (NASAIC reports 17.77% lower
  latency and 2.49× lower energy than network-then-accelerator).
- ``speed``: evaluations per second of the cheap objectives and constraints over integer codes
  (``Evaluator.cheap_objectives().evaluate_codes``: what linas's inner search and the nested mode
  call), joint (network and accelerator) against the network alone on the fixed zcu104 template, and
  the exact per-arch model, measured side by side in this process.

    python experiments/benchmarks/codesign.py --checkpoint runs/tiny [--budget 40] [--seeds 3]

Prints one JSON object (and writes it with ``--out``).
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

MODES = ("joint", "nested", "sequential")
CONFIG = """
[search]
space = "{space}"
algorithm = "{algorithm}"
budget = {budget}
seed = {seed}
storage = "sqlite:///{db}"
[accuracy]
checkpoint = "{checkpoint}"
[codesign]
mode = "{mode}"
[[objectives]]
name = "accuracy"
metric = "accuracy"
direction = "maximize"
[[objectives]]
name = "latency_ms"
metric = "zcu104.latency_ms"
[[objectives]]
name = "energy_mj"
metric = "zcu104.energy_mj"
[[objectives]]
name = "dsp"
metric = "zcu104.dsp"
"""


def machine() -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "loadavg_1min_at_end": load}


def _config(work: Path, mode: str, seed: int, budget: int, algorithm: str, checkpoint: Path):
    from nas.jobs.config import SearchConfig

    path = work / f"{mode}{seed}.toml"
    path.write_text(CONFIG.format(space="tiny_mbv3+hw(zcu104)", algorithm=algorithm, budget=budget, seed=seed,
                                  db=work / f"s{seed}.db", checkpoint=checkpoint.resolve(), mode=mode))
    return SearchConfig.from_toml(path)


def _at_equal_accuracy(seq: np.ndarray, joint: np.ndarray) -> dict:
    """Per sequential front member (acc, latency, energy, ...), the best joint latency and energy with
    at least its accuracy: median ratios sequential / joint (> 1: joint is better)."""
    lat, energy = [], []
    for acc, s_lat, s_energy, *_ in seq:
        ok = joint[joint[:, 0] >= acc]
        if len(ok):
            lat.append(s_lat / ok[:, 1].min())
            energy.append(s_energy / ok[:, 2].min())
    if not lat:
        return {"n": 0}
    return {"n": len(lat), "latency_seq_over_joint_median": round(statistics.median(lat), 4),
            "energy_seq_over_joint_median": round(statistics.median(energy), 4),
            "latency_reduction_median_pct": round(100 * (1 - 1 / statistics.median(lat)), 2)}


def modes(checkpoint: Path, budget: int, seeds: int, algorithm: str, work: Path) -> dict:
    from nas.jobs.results import normalised_hypervolume
    from nas.jobs.search import search

    runs = []
    for seed in range(seeds):
        results, seconds = {}, {}
        for mode in MODES:
            config = _config(work, mode, seed, budget, algorithm, checkpoint)
            space, objectives, constraints, catalog, extra = config.build()
            start = time.perf_counter()
            results[mode] = search(space, objectives, constraints, algorithm=algorithm, budget=budget, seed=seed,
                                   storage=config.search.storage, job=mode, catalog=catalog, config_extra=extra,
                                   progress=False, codesign=mode)
            seconds[mode] = round(time.perf_counter() - start, 1)
        signs = np.array([o.sign for o in results["joint"].objectives])
        points = np.vstack([r.feasible_matrix() for r in results.values()])
        row = {"seed": seed, "seconds": seconds}
        for mode, result in results.items():
            front = result.front_matrix()
            row[f"{mode}_hv"] = round(normalised_hypervolume(front, points), 6) if len(front) else 0.0
            row[f"{mode}_front"] = len(front)
            row[f"{mode}_accuracy_evaluations"] = _accuracy_evaluations(result, mode, str(work / f"s{seed}.db"))
            row[f"{mode}_templates_on_front"] = len({_hw(result, r) for r in result.front_records()})
        natural = {m: results[m].front_matrix() * signs for m in MODES}  # accuracy back to "higher is better"
        row["at_equal_accuracy"] = _at_equal_accuracy(natural["sequential"], natural["joint"])
        runs.append(row)
        print(f"seed {seed}: " + " ".join(f"{m} {row[f'{m}_hv']}" for m in MODES), file=sys.stderr)
    med = {m: statistics.median(r[f"{m}_hv"] for r in runs) for m in MODES}
    ratio = lambda a, b: round(a / b, 4) if b else None  # noqa: E731
    return {"joint_hv": med["joint"], "nested_hv": med["nested"], "sequential_hv": med["sequential"],
            "joint_over_sequential": ratio(med["joint"], med["sequential"]),
            "joint_over_nested": ratio(med["joint"], med["nested"]),
            "joint_over_sequential_per_seed": [ratio(r["joint_hv"], r["sequential_hv"]) for r in runs],
            "budget": budget, "algorithm": algorithm, "space": "tiny_mbv3+hw(zcu104)", "runs": runs,
            "target": "joint >= 1.10x sequential hypervolume",
            "reference": "NASAIC: 17.77% lower latency, 2.49x lower energy than network-then-accelerator"}


def _hw(result, record) -> str:
    return result.space.hw_id(result.space.parse(dict(record.arch)))


def _accuracy_evaluations(result, mode: str, db: str) -> int:
    """Networks whose accuracy was measured for this mode's front: its own complete trials, plus for
    the sequential mode the network job's (the pairs reuse those networks' accuracies)."""
    from nas.jobs.results import load_job

    own = {result.space.network(result.space.parse(dict(r.arch))).arch_id
           for r in result.records() if r.state in ("complete", "fail")}
    if mode != "sequential":
        return len(own)
    first = load_job(f"{result.name}.network", storage=f"sqlite:///{db}")
    return len({first.space.network(first.space.parse(dict(r.arch))).arch_id
                for r in first.records() if r.state in ("complete", "fail")} | own)


def speed(n: int, repeats: int) -> dict:
    from nas.jobs.evaluator import Evaluator
    from nas.jobs.objectives import Objective
    from search_spaces import get_space

    def objectives():
        return [Objective("acc", lambda a: 0.0, direction="maximize"), Objective("lat", "zcu104.latency_ms"),
                Objective("energy", "zcu104.energy_mj"), Objective("dsp", "zcu104.dsp")]

    rng = np.random.default_rng(0)
    out = {}
    for label, name in (("joint", "tiny_mbv3+hw(zcu104)"), ("network_only", "tiny_mbv3")):
        space = get_space(name)
        evaluator = Evaluator(space, objectives())
        start = time.perf_counter()
        cheap = evaluator.cheap_objectives()
        fit_s = time.perf_counter() - start
        codes = np.column_stack([rng.integers(0, k, n) for k in space.cardinalities])
        codes = cheap.canonical_codes(codes)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            cheap.evaluate_codes(codes)
            times.append(time.perf_counter() - start)
        archs = [space.decode(row) for row in codes[:300]]
        start = time.perf_counter()
        cheap.evaluate(archs)
        exact_rate = len(archs) / (time.perf_counter() - start)
        rates = [n / t for t in times]
        out[label] = {"space": name, "tables_fit_s": round(fit_s, 2), "codes_per_call": n,
                      "evals_per_s_median": round(statistics.median(rates)), "evals_per_s_min": round(min(rates)),
                      "evals_per_s_max": round(max(rates)), "exact_per_arch_evals_per_s": round(exact_rate)}
    out["joint_over_network_only"] = round(out["joint"]["evals_per_s_median"] /
                                           out["network_only"]["evals_per_s_median"], 3)
    out["target"] = "joint >= 50k evaluations/s"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="a `nas train` folder of tiny_mbv3 (modes part)")
    parser.add_argument("--parts", default="speed,modes")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--algorithm", default="nsga2")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if "modes" in parts and args.checkpoint is None:
        parser.error("the modes part needs --checkpoint (a `nas train` folder of tiny_mbv3)")
    out: dict = {}
    if "speed" in parts:
        out["speed"] = speed(n=100_000, repeats=7)
    if "modes" in parts:
        with tempfile.TemporaryDirectory(prefix="codesign-bench-") as tmp:
            out["modes"] = modes(args.checkpoint, args.budget, args.seeds, args.algorithm, Path(tmp))
    out["machine"] = machine()
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Benchmark: how close does each registered searcher get to the true Pareto front?

The space is small enough to enumerate (5,184 archs), so the true front is known exactly.
For every registered searcher (random included) at budgets 100, 300 and 1000 it runs
``run_ask_tell`` (batches of 10) for 5 seeds and reports, per algorithm and budget, the median
and the spread (interquartile range) over seeds of

    hv_ratio = HV(feasible front found) / HV(true front),

both measured with the same reference point: the true front's worst value in each objective
plus 10% of the front's range (points beyond it add nothing). HV ratios bunch up near 1 once a
front is roughly right, so it also reports ``front_recall``: the share of the true front's archs
that the search evaluated.

The problem ("proxy NAS"): six settings of a MobileNet-like family, ``depth`` 1-4 blocks per
stage, ``width`` multiplier 0.35-1.5, ``kernel`` 3/5/7, ``expand`` 2/3/4/6, input ``resolution``
96-224 in steps of 16 and ``se`` on/off (4·6·3·4·9·2 = 5,184 archs). Two minimised objectives that conflict:

- ``error`` = 1 − accuracy, with accuracy saturating in a capacity score
  (``0.93 − 0.45·exp(−capacity/2.2)``), where capacity grows with depth, log width, expansion and
  resolution, large kernels help only at high resolution (a 7×7 kernel at 96 px costs accuracy),
  SE helps narrow networks more than wide ones, plus a fixed pseudo-random term (σ = 0.004,
  seeded per arch) so the landscape is not smooth. Two interactions put the best archs on a narrow ridge: width should track resolution
  (compound scaling; ``−0.04·(log2(w/0.75) − log2(r/160))²``) and deep blocks with large
  expansion overfit (``−0.03·max(0, d·e − 12)/12``);
- ``log10 latency`` (ms) from a MAC-like count (resolution²·width²·depth·expansion·kernel-factor)
  with a per-layer fixed cost, an SE cost, and a penalty for widths that do not fill 8-lane
  vectors (0.35 and 1.25), so latency is not monotone in width. (Latency spans 2–1300 ms; the
  log keeps the fast end of the front from being flattened in the hypervolume.)

Neither is separable and the front (39 archs) mixes many settings.

    python experiments/benchmarks/search_quality.py [--algorithms nsga2,tpe] [--budgets 100,300]
        [--seeds 0,1,2,3,4] [--gp-max-budget 100] [--out part.json]
    python experiments/benchmarks/search_quality.py --merge part1.json part2.json ...

Prints one JSON object ``{"results": [{"algorithm", "budget", "hv_ratio_median",
"hv_ratio_spread", "hv_ratio_min", "front_recall_median", "seconds_median", "n_seeds"}...],
"machine": ..., "true_front_size": ..., "runs": [per-seed records]}``.

``gp`` refits Gaussian processes at every ask (budget 100 takes ~45 s per seed on 2 cores, and
each ask gets slower as trials accumulate), so budgets above ``--gp-max-budget`` are reported as
skipped. ``agemoea2`` appears only where numba is installed. Long runs can be split by
algorithm, budget or seed and combined with ``--merge``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib.metadata import version

import numpy as np

from nas.searchers import create_searcher, hypervolume, list_searchers, pareto_mask, run_ask_tell
from search_spaces import Choice, SearchSpace

SPACE = SearchSpace(
    "proxy_nas",
    [
        Choice("depth", [1, 2, 3, 4]),
        Choice("width", [0.35, 0.5, 0.75, 1.0, 1.25, 1.5]),
        Choice("kernel", [3, 5, 7]),
        Choice("expand", [2, 3, 4, 6]),
        Choice("resolution", [96, 112, 128, 144, 160, 176, 192, 208, 224]),
        Choice("se", [False, True]),
    ],
)
BATCH = 10
POPULATION_SEARCHERS = {"nsga2", "nsga3", "agemoea2", "smsemoa", "moead", "optuna-nsga2"}


def objectives_of_codes(codes: np.ndarray) -> np.ndarray:
    """``(n, 2)`` objectives (error, latency ms) of integer codes ``(n, 6)``; see the module doc."""
    opts = [np.array(p.options, dtype=float) for p in SPACE.params]
    d, w, k, e, r, se = (opts[i][codes[:, i]] for i in range(6))
    capacity = 0.55 * d + 1.2 * np.log2(w / 0.35) + 0.35 * e + 1.6 * np.log2(r / 96)
    kernel_gain = (k - 3) / 4 * (r - 128) / 96 * 0.6  # big kernels pay off only at high resolution
    acc = 0.93 - 0.45 * np.exp(-(capacity + kernel_gain) / 2.2)
    acc += se * 0.012 / w  # SE helps narrow nets most
    acc -= 0.04 * (np.log2(w / 0.75) - np.log2(r / 160)) ** 2  # compound scaling: width should track resolution
    acc -= 0.03 * np.clip(d * e - 12, 0, None) / 12  # deep and wide-expanding blocks overfit
    noise = np.random.default_rng(20261122).normal(0.0, 0.004, SPACE.size)
    flat = np.ravel_multi_index(tuple(codes.T), SPACE.cardinalities)
    error = 1.0 - acc + noise[flat]
    macs = (r / 224) ** 2 * w**2 * d * e * (1 + (k**2 - 9) / 40)
    lanes = np.where(np.isin(w, [0.35, 1.25]), 1.25, 1.0)  # channels that do not fill 8-lane vectors
    latency = 12.0 * macs * lanes + 0.6 * d + se * 0.35 * d * (r / 224) + 1.0
    return np.column_stack([error, np.log10(latency)])


ALL_CODES = np.array(np.unravel_index(np.arange(SPACE.size), SPACE.cardinalities)).T
ALL_F = objectives_of_codes(ALL_CODES)
TRUE_INDEX = np.flatnonzero(pareto_mask(ALL_F))
TRUE_FRONT = ALL_F[TRUE_INDEX]
REF = TRUE_FRONT.max(axis=0) + 0.1 * (TRUE_FRONT.max(axis=0) - TRUE_FRONT.min(axis=0))
TRUE_HV = hypervolume(TRUE_FRONT, REF)


def flat_index(archs) -> np.ndarray:
    codes = np.array([SPACE.encode(a) for a in archs])
    return np.ravel_multi_index(tuple(codes.T), SPACE.cardinalities)


def evaluate(archs):
    return ALL_F[flat_index(archs)], None


def run_one(name: str, budget: int, seed: int) -> dict:
    options = {"population_size": 20} if name in POPULATION_SEARCHERS else {}
    searcher = create_searcher(name, space=SPACE, n_objectives=2, seed=seed, **options)
    start = time.perf_counter()
    history = run_ask_tell(searcher, evaluate, budget=budget, batch_size=BATCH)
    seconds = time.perf_counter() - start
    assert len(history) == budget and len({a.arch_id for a in history.archs}) == budget
    ratio = hypervolume(history.F[history.pareto_mask()], REF) / TRUE_HV
    recall = np.isin(TRUE_INDEX, flat_index(history.archs)).mean()
    return {"algorithm": name, "budget": budget, "seed": seed, "hv_ratio": round(ratio, 5),
            "front_recall": round(float(recall), 4), "seconds": round(seconds, 2)}


def aggregate(runs: list[dict], skipped: list[dict]) -> list[dict]:
    results = []
    keys = sorted({(r["algorithm"], r["budget"]) for r in runs})
    for algorithm, budget in keys:
        mine = [r for r in runs if (r["algorithm"], r["budget"]) == (algorithm, budget)]
        ratios = np.array([r["hv_ratio"] for r in mine])
        q25, q50, q75 = np.percentile(ratios, [25, 50, 75])
        results.append({"algorithm": algorithm, "budget": budget, "hv_ratio_median": round(float(q50), 4),
                        "hv_ratio_spread": round(float(q75 - q25), 4), "hv_ratio_min": round(float(ratios.min()), 4),
                        "front_recall_median": round(float(np.median([r["front_recall"] for r in mine])), 4),
                        "seconds_median": round(float(np.median([r["seconds"] for r in mine])), 2),
                        "n_seeds": len(mine)})
    done = {(r["algorithm"], r["budget"]) for r in results}
    for s in skipped:
        if (s["algorithm"], s["budget"]) not in done:
            done.add((s["algorithm"], s["budget"]))
            results.append(s)
    return sorted(results, key=lambda r: (r["algorithm"], r["budget"]))


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "pymoo": version("pymoo"), "optuna": version("optuna"), "numpy": np.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", default=",".join(list_searchers()))
    parser.add_argument("--budgets", default="100,300,1000")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--gp-max-budget", type=int, default=100)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="combine earlier outputs instead of running")
    args = parser.parse_args()
    if args.merge:
        parts = [json.load(open(path)) for path in args.merge]
        runs = [r for p in parts for r in p["runs"]]
        skipped = [s for p in parts for s in p["results"] if "skipped" in s]
    else:
        runs, skipped = [], []
        for name in args.algorithms.split(","):
            for budget in (int(b) for b in args.budgets.split(",")):
                if name == "gp" and budget > args.gp_max_budget:
                    skipped.append({"algorithm": name, "budget": budget,
                                     "skipped": "gp refits its GPs at every ask (budget 100 took ~45 s per seed "
                                                f"on 2 cores, growing with trials); --gp-max-budget {budget} runs it"})
                    continue
                for seed in (int(s) for s in args.seeds.split(",")):
                    runs.append(run_one(name, budget, seed))
    out = {"results": aggregate(runs, skipped), "machine": machine(), "true_front_size": int(len(TRUE_FRONT)),
           "space_size": SPACE.size, "reference_point": [round(float(v), 4) for v in REF],
           "true_hv": round(TRUE_HV, 6), "batch_size": BATCH, "runs": runs}
    text = json.dumps(out, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()

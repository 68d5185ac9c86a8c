"""Benchmark: how close does each searcher get to the true Pareto front, and after how many evaluations?

Problems (``_search_problems.py``) are small enough to enumerate, so their true fronts are known:
``tiny_mbv3`` (real BN-recalibrated accuracies of 2,916 subnets of a trained tiny_mbv3 supernet, shipped
in ``results/tiny_mbv3_table.json``; error vs log10 MACs, MACs cheap), ``tiny_mbv3_mcu`` (the same
subnets: error vs STM32F746 peak SRAM vs ZCU104 latency, both cheap) and ``synthetic`` (a 5,184-arch
analytic proxy, error vs log10 latency, nothing cheap). Every searcher runs ``run_ask_tell`` (batches
of 10) up to the largest budget for each seed; a searcher does not know its budget, so the first
``b`` evaluations of that run are exactly a run at budget ``b``. Per problem, algorithm and budget it
reports the median over seeds, the spread (interquartile range) and the minimum of

    hv_ratio = HV(front of everything evaluated) / HV(true front),

both with the same reference point (the true front's worst value in each objective plus 10% of its
range), and ``front_recall`` (the share of the true front evaluated). Per problem and algorithm it
reports ``evals_to`` each threshold (default 0.98 and 0.99): the evaluations (at batch granularity)
after which hv_ratio first reached it, median over seeds (null when the median seed did not reach it
within ``within`` evaluations; ``reached`` counts the seeds that did), and ``fewer_than_nsga2``: nsga2's
median divided by the algorithm's. ``--reach-algorithms`` (default random and nsga2, which are cheap to
run) go on to ``--reach-budget`` (1,000) evaluations so that their counts are known.

    python experiments/benchmarks/search_quality.py [--problems tiny_mbv3,synthetic]
        [--algorithms random,nsga2,tpe,linas] [--budgets 50,100,300] [--seeds 0,1,2,3,4] [--out part.json]
    python experiments/benchmarks/search_quality.py --merge part1.json part2.json ...

Prints one JSON object ``{"results": [...], "evals_to": [...], "problems": {...}, "machine": ...,
"runs": [per-seed records]}``. ``gp`` refits Gaussian processes at every ask (~45 s per seed at
budget 100 on 2 cores, growing), so it runs only where the largest budget is within
``--gp-max-budget``. ``agemoea2`` appears only where numba is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib.metadata import version

import numpy as np

from _search_problems import PROBLEMS, Problem
from nas.searchers import create_searcher, run_ask_tell

BATCH = 10
POPULATION_SEARCHERS = {"nsga2", "nsga3", "agemoea2", "smsemoa", "moead", "optuna-nsga2"}


def run_one(problem: Problem, name: str, budgets: list[int], seed: int, thresholds: list[float],
            run_to: int) -> dict:
    """One seed of ``name`` up to ``run_to`` evaluations; hv_ratio of every budget's prefix and the
    first prefix (at batch ends) that reaches each threshold."""
    options = {"population_size": 20} if name in POPULATION_SEARCHERS else {}
    searcher = create_searcher(name, space=problem.space, n_objectives=problem.F.shape[1], seed=seed,
                               cheap=problem.cheap_objectives(), **options)
    start = time.perf_counter()
    history = run_ask_tell(searcher, problem.evaluate, budget=run_to, batch_size=BATCH)
    seconds = time.perf_counter() - start
    assert len(history) == run_to and len({a.arch_id for a in history.archs}) == run_to
    ratios = {n: problem.hv_ratio(history.F[:n]) for n in range(BATCH, run_to + 1, BATCH)}
    flat = problem.flat_index(history.archs)
    return {"problem": problem.name, "algorithm": name, "seed": seed, "seconds": round(seconds, 2), "ran": run_to,
            "hv_ratio": {str(b): round(problem.hv_ratio(history.F[:b]), 5) for b in budgets},
            "front_recall": {str(b): round(float(np.isin(problem.true_index, flat[:b]).mean()), 4) for b in budgets},
            "evals_to": {str(t): next((n for n, r in ratios.items() if r >= t), None) for t in thresholds}}


def _median_evals(values: list) -> int | None:
    """Median over seeds with "not reached" as infinity; None when the median seed did not reach it."""
    finite = np.array([np.inf if v is None else v for v in values], dtype=float)
    median = float(np.median(finite))
    return None if not np.isfinite(median) else int(round(median))


def aggregate(runs: list[dict]) -> tuple[list[dict], list[dict]]:
    results, reach = [], []
    for problem, algorithm in sorted({(r["problem"], r["algorithm"]) for r in runs}):
        mine = [r for r in runs if (r["problem"], r["algorithm"]) == (problem, algorithm)]
        for budget in sorted({int(b) for r in mine for b in r["hv_ratio"]}):
            ratios = np.array([r["hv_ratio"][str(budget)] for r in mine if str(budget) in r["hv_ratio"]])
            q25, q50, q75 = np.percentile(ratios, [25, 50, 75])
            recall = [r["front_recall"][str(budget)] for r in mine if str(budget) in r["front_recall"]]
            results.append({"problem": problem, "algorithm": algorithm, "budget": budget,
                            "hv_ratio_median": round(float(q50), 4), "hv_ratio_spread": round(float(q75 - q25), 4),
                            "hv_ratio_min": round(float(ratios.min()), 4),
                            "front_recall_median": round(float(np.median(recall)), 4), "n_seeds": len(ratios)})
        for threshold in sorted({t for r in mine for t in r["evals_to"]}):
            values = [r["evals_to"][threshold] for r in mine]
            reach.append({"problem": problem, "algorithm": algorithm, "threshold": float(threshold),
                          "evals_median": _median_evals(values), "reached": sum(v is not None for v in values),
                          "n_seeds": len(values), "within": min(r.get("ran", 0) for r in mine),
                          "seconds_median": round(float(np.median([r["seconds"] for r in mine])), 2)})
    for row in reach:
        nsga2 = next((x for x in reach if (x["problem"], x["algorithm"], x["threshold"]) ==
                      (row["problem"], "nsga2", row["threshold"])), None)
        if nsga2 is not None and row["evals_median"] and nsga2["evals_median"]:
            row["fewer_than_nsga2"] = round(nsga2["evals_median"] / row["evals_median"], 2)
        elif nsga2 is not None and row["evals_median"] and nsga2["evals_median"] is None:
            row["fewer_than_nsga2"] = f"> {round(nsga2['within'] / row['evals_median'], 2)}"
    return results, reach


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "pymoo": version("pymoo"), "optuna": version("optuna"), "numpy": np.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", default="tiny_mbv3,tiny_mbv3_mcu,synthetic")
    parser.add_argument("--algorithms", default="random,nsga2,tpe,linas")
    parser.add_argument("--budgets", default="50,100,300")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--thresholds", default="0.98,0.99")
    parser.add_argument("--reach-budget", type=int, default=1000,
                        help="run --reach-algorithms this far, so their evaluations-to-threshold are known")
    parser.add_argument("--reach-algorithms", default="random,nsga2")
    parser.add_argument("--gp-max-budget", type=int, default=100)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="combine earlier outputs instead of running")
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    problems = {name: PROBLEMS[name]() for name in args.problems.split(",")}
    if args.merge:
        runs = [r for path in args.merge for r in json.load(open(path))["runs"]]
    else:
        runs = []
        for problem in problems.values():
            for name in args.algorithms.split(","):
                if name == "gp" and max(budgets) > args.gp_max_budget:
                    print(f"skipping gp at budget {max(budgets)} (--gp-max-budget {args.gp_max_budget})", flush=True)
                    continue
                for seed in (int(s) for s in args.seeds.split(",")):
                    run_to = max(budgets + ([args.reach_budget] if name in args.reach_algorithms.split(",") else []))
                    runs.append(run_one(problem, name, budgets, seed, [float(t) for t in args.thresholds.split(",")],
                                        run_to))
    results, reach = aggregate(runs)
    out = {"results": results, "evals_to": reach, "problems": {n: p.describe() for n, p in problems.items()},
           "machine": machine(), "batch_size": BATCH, "runs": runs}
    text = json.dumps(out, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()

"""Benchmark: how fast the predictor-driven inner search evaluates candidates, and how fast a
job store records trials.

1. ``inner``: ``ofa_mbv3``, objectives MACs + predicted accuracy + stm32f746 peak SRAM (the LINAS
   inner loop). An accuracy ensemble is fitted on 200 archs (a synthetic accuracy: no supernet is
   needed to time the loop). 10,000 candidates (canonical codes) are scored by the vectorised
   surrogate in generations of 100, and the *same* candidates by a plain Python loop, one arch at a
   time (decode, layer table, cost models, predictor on one row). Both are timed on this machine in
   one run; exact agreement of the cheap objectives is checked.
2. ``store``: trials/s of a real search (random search, cheap objectives) recorded in SQLite, and in
   PostgreSQL when ``--postgres URL`` (or ``HWNAS_TEST_POSTGRES_URL``) is given.

Prints JSON with ``inner_evals_per_s``, ``plain_loop_evals_per_s``, ``speedup``,
``sqlite_trials_per_s``, ``postgres_trials_per_s`` and the machine.

    python experiments/benchmarks/search_speed.py [--candidates 10000] [--postgres URL]
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

from hw_profiles import cost_model_for, get_profile, macs
from hw_profiles.block_table import SpaceCodes
from nas.jobs.objectives import Constraint, MetricCatalog, Objective
from nas.jobs.search import search
from nas.searchers import CheapObjectives
from nas.searchers.predictor_guided import PredictorGuidedSearcher
from predictors.accuracy import AccuracyEnsemble
from search_spaces import get_space


def synthetic_accuracy(codes: np.ndarray) -> np.ndarray:
    return 1 - np.exp(-(codes.sum(axis=1) + 3.0) / 60.0)


def inner_speed(n_candidates: int, seed: int) -> dict:
    space = get_space("ofa_mbv3")
    rng = np.random.default_rng(seed)
    catalog = MetricCatalog(space)
    t_macs, t_sram = catalog.block_table("macs"), catalog.block_table("stm32f746.peak_sram_kb")
    canonical = SpaceCodes(space).canonical
    train = canonical(np.vstack([space.encode(space.sample(rng)) for _ in range(200)]))

    def cheap_codes(codes):
        F = np.column_stack([np.full(len(codes), np.nan), t_macs.evaluate(codes), t_sram.evaluate(codes)])
        return F, np.zeros((len(codes), 0))

    cheap = CheapObjectives(indices=(1, 2), evaluate=lambda archs: None, evaluate_codes=cheap_codes,
                            canonical_codes=canonical)
    searcher = PredictorGuidedSearcher(space=space, n_objectives=3, seed=seed, cheap=cheap)
    model = AccuracyEnsemble(seed=seed, n_members=3).fit(searcher._one_hot(train), -synthetic_accuracy(train))
    searcher._models = {0: model}
    candidates = canonical(rng.integers(0, space.cardinalities, size=(n_candidates, len(space.params))))

    start = time.perf_counter()
    fast = np.vstack([searcher.surrogate(candidates[i:i + 100])[0] for i in range(0, n_candidates, 100)])
    inner_s = time.perf_counter() - start

    mcu = cost_model_for(get_profile("stm32f746"))
    start = time.perf_counter()
    slow = []
    for row in candidates:
        arch = space.canonicalize(space.decode(row))
        layers = space.layers(arch)
        x = searcher._features([arch])
        mean, var = model.predict_dist(x)
        slow.append((mean[0] - 0.5 * np.sqrt(var[0]), float(macs(layers)), mcu.metrics(layers)["peak_sram_kb"].value))
    plain_s = time.perf_counter() - start
    slow = np.array(slow)
    agree = bool(np.allclose(fast[:, 1:], slow[:, 1:], rtol=1e-12) and np.allclose(fast[:, 0], slow[:, 0], atol=1e-9))
    return {"candidates": n_candidates, "inner_evals_per_s": round(n_candidates / inner_s),
            "plain_loop_evals_per_s": round(n_candidates / plain_s), "speedup": round(plain_s / inner_s, 1),
            "inner_s": round(inner_s, 3), "plain_loop_s": round(plain_s, 3), "results_agree": agree,
            "target": {"inner_evals_per_s": 50000, "speedup": 10}}


def store_speed(storage: str, budget: int, seed: int) -> float:
    space = get_space("ofa_mbv3")
    objectives = [Objective("macs", "macs"), Objective("sram", "stm32f746.peak_sram_kb")]
    start = time.perf_counter()
    search(space, objectives, [Constraint("stm32f746.flash_kb", "<=", 1e9)], algorithm="random", budget=budget,
           seed=seed, storage=storage, job=f"speed-{time.time_ns()}", progress=False)
    return round(budget / (time.perf_counter() - start), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=10000)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--postgres", default=os.environ.get("HWNAS_TEST_POSTGRES_URL"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = {"benchmark": "search_speed", **inner_speed(args.candidates, args.seed)}
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-") as tmp:
        result["sqlite_trials_per_s"] = store_speed(f"sqlite:///{Path(tmp) / 'nas.db'}", args.trials, args.seed)
    result["postgres_trials_per_s"] = store_speed(args.postgres, args.trials, args.seed) if args.postgres else None
    result["machine"] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                         "cpu_count": os.cpu_count()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

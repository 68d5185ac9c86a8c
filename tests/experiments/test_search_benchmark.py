"""The search-quality benchmark's shipped real-accuracy table and its runner, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "experiments" / "benchmarks"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=BENCHMARKS, capture_output=True, text=True, timeout=300)


def test_the_shipped_table_matches_the_subspace_and_todays_cost_models():
    done = _run("tiny_mbv3_table.py", "--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_benchmark_scores_searchers_against_the_true_front():
    done = _run("search_quality.py", "--problems", "tiny_mbv3", "--algorithms", "random,nsga2", "--seeds", "0,1",
                "--budgets", "20,40", "--reach-budget", "60", "--thresholds", "0.5,1.01")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["problems"]["tiny_mbv3"]["space_size"] == 2916 and out["problems"]["tiny_mbv3"]["cheap_columns"] == [1]
    rows = {(r["algorithm"], r["budget"]): r for r in out["results"]}
    assert set(rows) == {(a, b) for a in ("random", "nsga2") for b in (20, 40)}
    for (algorithm, budget), row in rows.items():
        assert 0 < row["hv_ratio_min"] <= row["hv_ratio_median"] <= 1 and row["n_seeds"] == 2
        assert row["hv_ratio_median"] >= rows[(algorithm, 20)]["hv_ratio_median"]  # a longer prefix never loses
    reach = {(r["algorithm"], r["threshold"]): r for r in out["evals_to"]}
    assert reach[("nsga2", 1.01)]["evals_median"] is None and reach[("nsga2", 1.01)]["reached"] == 0
    assert reach[("random", 0.5)]["within"] == 60 and 10 <= reach[("random", 0.5)]["evals_median"] <= 60

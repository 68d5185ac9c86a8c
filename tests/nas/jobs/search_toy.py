"""A user-defined space and objectives for search tests; importable by worker subprocesses.

The expensive objective appends each evaluated arch_id to the file named by ``HWNAS_EVAL_LOG``
(if set) and can be slowed down with ``HWNAS_EVAL_SLEEP`` seconds, so tests can count real
evaluations and kill a process mid-search.
"""

from __future__ import annotations

import os
import time

from nas.jobs.objectives import Constraint, Objective
from search_spaces import Choice, SearchSpace

SPACE = SearchSpace("toy", [Choice("a", [0, 1, 2, 3, 4, 5]), Choice("b", [0, 1, 2, 3, 4, 5]),
                            Choice("c", ["x", "y", "z"]), Choice("d", [1, 2, 4, 8])])


def size(arch) -> float:
    v = arch.to_dict()
    return float(v["a"] + v["b"] + v["d"])


def quality(arch) -> float:
    """Expensive: rises with size, with diminishing returns and a bonus for c='y'."""
    log = os.environ.get("HWNAS_EVAL_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(arch.arch_id + "\n")
    delay = float(os.environ.get("HWNAS_EVAL_SLEEP", "0"))
    if delay:
        time.sleep(delay)
    v = arch.to_dict()
    return (1 - 0.8 ** (v["a"] + 1)) * (1 - 0.7 ** (v["b"] + 1)) + (0.05 if v["c"] == "y" else 0.0) - 0.01 * v["d"]


def objectives() -> list[Objective]:
    return [Objective("quality", quality, direction="maximize"), Objective("size", size, cheap=True)]


def constraints() -> list[Constraint]:
    return [Constraint("size", "<=", 12)]


def evaluator():
    from nas.jobs.evaluator import Evaluator

    return Evaluator(SPACE, objectives(), constraints())


HEARTBEAT_S, GRACE_S = 1, 3


def storage(url: str):
    from nas.jobs.store import open_storage

    return open_storage(url, heartbeat_s=HEARTBEAT_S, grace_s=GRACE_S)


def run_coordinator(url: str, job: str, budget: int, local: bool, algorithm: str = "nsga2") -> None:
    from nas.jobs.search import search

    search(SPACE, objectives(), constraints(), algorithm=algorithm, budget=budget, seed=0, storage=storage(url),
           job=job, batch_size=4, evaluate_locally=local, progress=False)


def run_worker(url: str, job: str) -> None:
    from nas.jobs.worker import run_worker as loop

    loop(job, storage=storage(url), evaluator=evaluator(), poll_s=0.1, idle_exit_s=60, log=lambda msg: None)


if __name__ == "__main__":
    import sys

    from search_spaces import NASError

    role, url, job = sys.argv[1:4]
    try:
        if role == "coordinator":
            run_coordinator(url, job, int(sys.argv[4]), local=sys.argv[5] == "local", algorithm=sys.argv[6]
                            if len(sys.argv) > 6 else "nsga2")
        else:
            run_worker(url, job)
    except NASError as err:  # as the CLI does: one line, exit 2
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)

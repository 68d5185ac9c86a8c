"""linas: predictor-in-the-loop search; its vectorised inner loop and its recorded Kendall τ."""

from __future__ import annotations

import numpy as np
import pytest

from nas.jobs.objectives import Constraint, Objective, ObjectiveError
from nas.jobs.search import search
from search_spaces import get_space

SPACE = get_space("tiny_mbv3")


def accuracy(arch) -> float:
    """Synthetic, expensive: saturating in capacity, with a resolution bonus."""
    codes = SPACE.encode(arch)
    return float(1 - np.exp(-(codes.sum() + 2.0) / 25.0))


def _objectives():
    return [Objective("acc", accuracy, direction="maximize"), Objective("macs", "macs"),
            Objective("sram", "stm32f746.peak_sram_kb")]


def _run(algorithm: str, seed: int):
    return search(SPACE, _objectives(), [Constraint("stm32f746.flash_kb", "<=", 400)], algorithm=algorithm,
                  budget=40, seed=seed, batch_size=8, progress=False)


def test_linas_records_its_predictor_and_is_reproducible():
    first, again = _run("linas", 0), _run("linas", 0)
    assert first.trials().arch_id.tolist() == again.trials().arch_id.tolist()
    report = first.job.predictor_report
    assert report["inner_evaluations"] >= 1000  # thousands of candidates scored on the predictor
    taus = [row["kendall_tau"] for row in report["kendall_tau"]]
    assert taus and all(-1 <= t <= 1 for t in taus) and np.mean(taus) > 0.3
    trials = first.trials()
    assert len(trials[trials.state == "complete"]) == 40 and trials.arch_id.is_unique


def test_linas_beats_random_search_at_equal_budget():
    ref = [0.0, 5e6, 200.0]  # minimised: -acc, MACs, peak SRAM KiB
    linas = [_run("linas", s).hypervolume(ref) for s in (0, 1)]
    random = [_run("random", s).hypervolume(ref) for s in (0, 1)]
    assert np.median(linas) > np.median(random)


def test_linas_needs_an_expensive_objective():
    with pytest.raises(ObjectiveError, match="every objective is cheap"):
        search(SPACE, [Objective("macs", "macs"), Objective("p", "params")], algorithm="linas", budget=4,
               progress=False)

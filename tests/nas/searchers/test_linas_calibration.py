"""linas keeps its held-out predictions (mean, var) in the job store, and the job reports their calibration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nas.cli import main
from nas.jobs.objectives import Constraint, Objective
from nas.jobs.predictor_report import accuracy_predictor_report
from nas.jobs.records import JobConfig
from nas.jobs.search import search
from nas.jobs.store import Job, open_storage
from nas.searchers.predictor_guided import PredictorGuidedSearcher
from predictors.calibration import interval_report
from search_spaces import get_space

SPACE = get_space("tiny_mbv3")


def accuracy(arch) -> float:
    """Synthetic, expensive: saturating in capacity."""
    return float(1 - np.exp(-(SPACE.encode(arch).sum() + 2.0) / 25.0))


def _search(storage: str, budget: int, algorithm: str = "linas"):
    objectives = [Objective("acc", accuracy, direction="maximize"), Objective("macs", "macs"),
                  Objective("sram", "stm32f746.peak_sram_kb")]
    return search(SPACE, objectives, [Constraint("stm32f746.flash_kb", "<=", 400)], algorithm=algorithm,
                  budget=budget, seed=0, batch_size=8, storage=storage, job=algorithm, progress=False)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A linas job run to 32 evaluations, then resumed to 40 (so the pairs must survive a resume)."""
    storage = f"sqlite:///{tmp_path_factory.mktemp('linas') / 'nas.db'}"
    first = {r.arch_id: r.predicted for r in _search(storage, 32).records() if r.predicted}
    return storage, first, _search(storage, 40)


def test_linas_stores_a_prediction_made_before_evaluation_on_each_proposed_trial(searched):
    _, first, result = searched
    records = result.records()
    predicted = [r for r in records if r.predicted]
    assert first and len(predicted) > len(first)  # the resumed run added its own
    assert all({r.arch_id: r.predicted for r in predicted}[aid] == p for aid, p in first.items())  # kept as written
    assert all(set(r.predicted) == {"acc"} for r in predicted)  # only the expensive objective is predicted
    assert all(r.state != "pruned" for r in predicted)  # a cheap reject is never queued, so never predicted
    assert not any(r.predicted for r in records[:16])  # the warm-up samples had no model yet
    # in the objective's own units (maximised: the searcher's negated mean is negated back)
    mean = np.array([r.predicted["acc"][0] for r in predicted if r.state == "complete"])
    y = np.array([r.value("acc") for r in predicted if r.state == "complete"])
    assert (mean > 0.3).all() and np.abs(mean - y).max() < 0.2
    assert all(math.isfinite(v) and v > 0 for r in predicted for _, v in r.predicted.values())


def test_the_report_pairs_the_stored_predictions_with_the_measured_values(searched):
    _, _, result = searched
    report = accuracy_predictor_report(result)
    pairs = [(*t.user_attrs["predicted"]["acc"].values(), t.user_attrs["result"]["metrics"]["acc"]["value"])
             for t in result.job.study.get_trials() if "predicted" in t.user_attrs and t.state.name == "COMPLETE"]
    expected = interval_report(*np.array(pairs).T)  # from the raw Optuna rows, not through the records
    assert report.objective == "acc" and report.n == len(pairs) >= 10
    assert report.to_json() == {"objective": "acc", **expected}


def test_pareto_json_carries_the_accuracy_predictor(searched, capsys):
    storage, _, result = searched
    assert main(["pareto", "linas", "--storage", storage, "--format", "json", "--objectives", "macs,sram"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"front", "accuracy_predictor"}
    assert out["front"] and all("arch_id" in row and "acc" not in row for row in out["front"])
    calibration = out["accuracy_predictor"]  # reported over the job, whatever --objectives kept
    assert calibration == pytest.approx(accuracy_predictor_report(result).to_json())
    assert 0 <= calibration["covered"] <= calibration["n"] and calibration["nominal"] == 0.9
    assert calibration["scale"] > 0 and calibration["median_width"] > 0


def test_nas_search_prints_the_calibration_line(searched, capsys, monkeypatch):
    storage, _, result = searched
    from nas.jobs import from_config

    monkeypatch.setattr(from_config, "search_from_config",
                        lambda *a, **k: from_config.ConfigSearch(result=result, storage=storage))
    assert main(["search", "unused.toml", "--no-progress"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    report = accuracy_predictor_report(result)
    assert line == (f"accuracy predictor: 90% interval covered {report.covered} of {report.n} held-out "
                    f"evaluations ({report.empirical:.0%}), Kendall tau {report.kendall_tau:.2f}")


def test_other_searchers_store_no_prediction(tmp_path):
    result = _search(f"sqlite:///{tmp_path / 'nas.db'}", 12, algorithm="random")
    assert not any(r.predicted for r in result.records())
    assert accuracy_predictor_report(result) is None


def test_the_searcher_keeps_the_held_out_prediction_not_a_refitted_one():
    searcher = PredictorGuidedSearcher(space=SPACE, n_objectives=1, seed=0, warmup=16, inner_generations=3)
    warm = searcher.ask(16)
    assert searcher.predictions([a.arch_id for a in warm]) == {}  # random warm-up: no model
    searcher.tell(warm, [[-accuracy(a)] for a in warm])
    proposed = searcher.ask(8)
    ids = [a.arch_id for a in proposed]
    held_out = searcher.predictions(ids)
    assert held_out and set(held_out) <= set(ids) and all(set(p) == {0} for p in held_out.values())
    X = searcher._all_columns(np.vstack([SPACE.encode(a) for a in proposed if a.arch_id in held_out]))
    mean, var = searcher._models[0].predict_dist(X)  # the model of the 16 warm-up archs
    np.testing.assert_allclose([held_out[a][0] for a in ids if a in held_out], np.c_[mean, var])
    searcher.tell(proposed, [[-accuracy(a)] for a in proposed])
    searcher.ask(8)  # refits on those 24, the proposed archs included
    assert searcher.predictions(ids) == held_out
    refitted, _ = searcher._models[0].predict_dist(X)
    assert not np.allclose(refitted, mean)  # a refit would have seen them: not held out


def test_only_finite_predictions_reach_the_store_and_forged_ones_are_ignored():
    job = Job.create("j", storage=open_storage(None), directions=["maximize"], config=JobConfig(space="tiny_mbv3"))
    archs = [SPACE.sample(np.random.default_rng(i)) for i in range(6)]
    archs = list({a.arch_id: a for a in archs}.values())[:4]
    bad = [{"mean": math.nan, "var": 0.1}, {"mean": 0.5, "var": math.inf}, {"mean": 0.5, "var": 0.0},
           {"mean": True, "var": 0.1}]
    job.enqueue(archs[:1], predicted={archs[0].arch_id: {"acc": {"mean": 0.5, "var": 0.01}, "x": bad[0]}})
    job.enqueue(archs[1:4], predicted={a.arch_id: {"acc": b} for a, b in zip(archs[1:4], bad[1:])})
    stored = {t.user_attrs["arch_id"]: t.user_attrs.get("predicted") for t in job.study.get_trials()}
    assert stored[archs[0].arch_id] == {"acc": {"mean": 0.5, "var": 0.01}}
    assert all(stored[a.arch_id] is None for a in archs[1:4])  # nothing non-finite (or non-positive) written
    forged = {"acc": {"mean": "x", "var": 1}, "b": [1, 2], "c": {"mean": 0.2, "var": -1}, "d": {"mean": 1, "var": 2}}
    job.study.enqueue_trial({}, user_attrs={"arch_id": "f", "arch": {}, "predicted": forged})
    job.study.enqueue_trial({}, user_attrs={"arch_id": "g", "arch": {}, "predicted": "garbage"})
    by_id = {r.arch_id: r.predicted for r in job.records()}
    assert by_id[archs[0].arch_id] == {"acc": (0.5, 0.01)}
    assert by_id["f"] == {"d": (1.0, 2.0)} and by_id["g"] == {}  # the records stay readable

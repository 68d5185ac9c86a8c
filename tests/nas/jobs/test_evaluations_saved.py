"""compare_hypervolume's evaluation counts (evaluations saved against random search) and their line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nas.jobs.results import (HypervolumeComparison, compare_hypervolume, normalised_hypervolume,
                              objective_matrix)
from nas.jobs.search import search
from nas.searchers import pareto_mask

import search_toy
from search_toy import SPACE


_QUALITY = search_toy.quality


def _quality_failing_some(arch) -> float:
    """search_toy's quality, failing (a FAIL trial) for c='z' with d=8."""
    v = arch.to_dict()
    if v["c"] == "z" and v["d"] == 8:
        raise RuntimeError("this arch does not evaluate")
    return _QUALITY(arch)


@pytest.fixture(scope="module")
def jobs():
    """A searched job and its random baseline (same budget and seed), in memory; some archs are pruned
    (size > 12) and some fail."""
    mp = pytest.MonkeyPatch()
    mp.setattr(search_toy, "quality", _quality_failing_some)
    try:
        run = dict(budget=30, seed=3, progress=False)
        result = search(SPACE, search_toy.objectives(), search_toy.constraints(), algorithm="nsga2", **run)
        baseline = search(SPACE, search_toy.objectives(), search_toy.constraints(), algorithm="random", **run)
    finally:
        mp.undo()
    return result, baseline


def _points(*results) -> np.ndarray:
    return np.vstack([r.feasible_matrix() for r in results])


def _brute_force_hv(result, k: int, points: np.ndarray) -> float:
    """The normalised hypervolume of the feasible front of the job's first ``k`` counted evaluations."""
    counted = [r for r in sorted(result.records(), key=lambda r: r.number) if r.state in ("complete", "fail")]
    feasible = [r for r in counted[:k] if r.state == "complete" and r.feasible]
    F = objective_matrix(feasible, result.objectives)
    return normalised_hypervolume(F[pareto_mask(F)], points) if len(F) else 0.0


def _brute_force_reach(result, target: float, points: np.ndarray) -> int | None:
    n = sum(r.state != "pruned" for r in result.records())
    return next((k for k in range(n + 1) if _brute_force_hv(result, k, points) >= target - 1e-12), None)


def test_counts_match_a_brute_force_recomputation(jobs):
    result, baseline = jobs
    report = compare_hypervolume(result, baseline)
    points = _points(result, baseline)
    hv, hv_base = (_brute_force_hv(r, 10**6, points) for r in (result, baseline))
    assert hv > 0 and hv_base > 0
    assert (round(hv, 6), round(hv_base, 6)) == (report.hypervolume, report.baseline_hypervolume)
    states = [r.state for r in result.records()]
    assert report.evaluations == 30 == report.baseline_evaluations == states.count("complete") + states.count("fail")
    assert report.baseline_evaluations_to_match == _brute_force_reach(baseline, hv, points)
    assert report.evaluations_to_match_baseline == _brute_force_reach(result, hv_base, points)
    assert report.baseline_evaluations_to_final == _brute_force_reach(baseline, hv_base, points)
    # exactly one direction may fail to match: the job with the lower final hypervolume never reaches the other's
    assert (report.baseline_evaluations_to_match is None) == (hv_base < hv - 1e-12)
    assert (report.evaluations_to_match_baseline is None) == (hv < hv_base - 1e-12)
    assert report.to_json()["baseline_evaluations_to_match"] == report.baseline_evaluations_to_match
    assert report.savings_line().startswith("evaluations saved: ")


def test_a_baseline_identical_to_the_job_matches_where_the_job_reached_its_final_hypervolume(jobs):
    result, _ = jobs
    report = compare_hypervolume(result, result)
    points = _points(result, result)
    final = _brute_force_hv(result, 10**6, points)
    reached = _brute_force_reach(result, final, points)
    assert 1 <= reached <= 30 and _brute_force_hv(result, reached - 1, points) < final
    assert (report.baseline_evaluations_to_match == report.evaluations_to_match_baseline
            == report.baseline_evaluations_to_final == reached)
    assert report.savings_line() == (f"evaluations saved: none: random search reached this job's hypervolume "
                                     f"after {reached} of its 30 evaluations (this job used 30)")


def test_pruned_trials_do_not_count_and_failed_ones_do(jobs):
    result, baseline = jobs
    for job in (result, baseline):
        states = [r.state for r in job.records()]
        assert "pruned" in states  # the size constraint rejected some archs before any evaluation
        counted = job.counted_records()
        assert [r.number for r in counted] == sorted(r.number for r in job.records() if r.state != "pruned")
    assert any(r.state == "fail" for r in result.records() + baseline.records())
    report = compare_hypervolume(result, baseline)
    hit = report.baseline_evaluations_to_match or report.evaluations_to_match_baseline
    job = baseline if report.baseline_evaluations_to_match else result
    # the count is the hit's position among counted evaluations, not among all finished trials
    hit_number = job.counted_records()[hit - 1].number
    assert hit < hit_number + 1  # pruned trials came before the hit
    assert hit == sum(r.state != "pruned" for r in job.records() if r.number <= hit_number)


def _report(**counts) -> HypervolumeComparison:
    base = dict(hypervolume=1.2, baseline_hypervolume=1.0, ratio=1.2, front_size=5, baseline_front_size=4,
                baseline_job="j.random", evaluations=50, baseline_evaluations=50, baseline_evaluations_to_match=None,
                evaluations_to_match_baseline=18, baseline_evaluations_to_final=50)
    return HypervolumeComparison(**{**base, **counts})


def test_the_savings_line_wordings():
    assert _report(hypervolume=1.0, baseline_hypervolume=1.2, baseline_evaluations=200,
                   baseline_evaluations_to_match=140, evaluations_to_match_baseline=None).savings_line() == (
        "evaluations saved: random search needed 140 evaluations to reach this hypervolume (2.8x this job's 50)")
    assert _report().savings_line() == (
        "evaluations saved: random search did not reach this hypervolume in its 50 evaluations; this job reached "
        "random search's final hypervolume after 18, random search after 50 (2.8x fewer)")
    assert _report(evaluations_to_match_baseline=40, baseline_evaluations_to_final=30).savings_line().endswith(
        "after 40, random search after 30 (no fewer)")
    assert _report(hypervolume=1.0, baseline_hypervolume=1.1, baseline_evaluations_to_match=30,
                   evaluations_to_match_baseline=None).savings_line() == (
        "evaluations saved: none: random search reached this job's hypervolume after 30 of its 50 evaluations "
        "(this job used 50)")
    assert _report(baseline_evaluations_to_match=50).savings_line().startswith("evaluations saved: none: ")
    assert "no feasible" in _report(hypervolume=0.0, baseline_evaluations_to_match=0).savings_line()
    assert "random search found no feasible" in _report(baseline_hypervolume=0.0, ratio=None,
                                                        evaluations_to_match_baseline=0).savings_line()


def test_an_old_report_without_the_counts_still_loads(jobs):
    result, baseline = jobs
    report = compare_hypervolume(result, baseline)
    assert HypervolumeComparison.from_json(report.to_json()) == report
    old = {k: v for k, v in report.to_json().items() if k not in HypervolumeComparison.ADDED_KEYS}
    result.job.save_report(old)  # as an older hwnas stored it
    loaded = HypervolumeComparison.from_json(result.job.study.user_attrs["report"])
    assert loaded == dataclasses.replace(report, **dict.fromkeys(HypervolumeComparison.ADDED_KEYS))
    assert loaded.savings_line() == "evaluations saved: not recorded (the report was stored before hwnas counted them)"


CONFIG = """
[search]
space = "tiny_mbv3"
budget = 12
seed = 1
job = "saved"
storage = "{storage}"

[[objectives]]
name = "macs"
metric = "macs"

[[objectives]]
name = "sram_kb"
metric = "stm32f746.peak_sram_kb"
"""


def test_nas_search_and_the_pipeline_print_the_same_line_after_the_hypervolume_line(tmp_path, capsys):
    from types import SimpleNamespace

    from nas.cli import main
    from nas.jobs.config import SearchConfig
    from nas.pipeline._stages import search_stage
    from search_spaces import get_space

    path = tmp_path / "search.toml"
    path.write_text(CONFIG.format(storage=f"sqlite:///{tmp_path / 'nas.db'}"))
    assert main(["search", str(path), "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("hypervolume (normalised"))
    assert lines[at + 1].startswith("evaluations saved: ")
    # the pipeline's stage on the same (finished) jobs: skipped, and the same line from the same report
    config = SimpleNamespace(search_config=lambda out: SearchConfig.from_toml(path), job="saved",
                             baseline_job="saved.random")
    echoed = []
    ctx = SimpleNamespace(config=config, out=tmp_path, space=get_space("tiny_mbv3"), progress=False,
                          echo=echoed.append, previous={})
    stage = search_stage(ctx)
    assert stage.status == "skipped" and stage.evaluations == stage.hypervolume.evaluations == 12
    at = next(i for i, line in enumerate(echoed) if line.startswith("hypervolume (normalised"))
    assert echoed[at + 1] in lines and echoed[at + 1] == stage.hypervolume.savings_line()
    assert stage.to_json()["hypervolume"]["baseline_evaluations_to_match"] == \
        stage.hypervolume.baseline_evaluations_to_match

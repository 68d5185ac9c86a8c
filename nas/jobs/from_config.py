"""``search_from_config``: the search job a ``SearchConfig`` TOML file describes, and by default its
random-search baseline (same budget, seed and storage; job ``NAME.random``) with the hypervolume
comparison stored on the job as its ``report`` attribute."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nas.jobs.results import HypervolumeComparison, SearchResult
from nas.jobs.search import DEFAULT_WAIT_TIMEOUT_S
from nas.jobs.sequential import SequentialComparison


@dataclass(frozen=True)
class ConfigSearch:
    """What ``search_from_config`` ran: the job, the storage URL it used, and (unless the baseline was
    skipped or the algorithm is ``random``) the baseline job and ``compare_hypervolume``'s report."""

    result: SearchResult
    storage: str
    baseline: SearchResult | None = None
    report: HypervolumeComparison | None = None
    sequential: SequentialComparison | None = None


def search_from_config(path: Path, *, job: str | None = None, storage: str | None = None, budget: int | None = None,
                       evaluate_locally: bool = True, baseline: bool = True, progress: bool = True,
                       wait_timeout_s: float | None = DEFAULT_WAIT_TIMEOUT_S) -> ConfigSearch:
    """Run or resume the job of the config at ``path``; ``job``, ``storage`` and ``budget`` override the
    config's ``[search]`` values when given; ``wait_timeout_s`` as in :func:`nas.jobs.search.search`. Raises
    the config's and the search's NASErrors."""
    from nas.jobs.config import SearchConfig
    from nas.jobs.search import search

    from nas.jobs.codesign import check_mode
    from search_spaces import get_space

    config = SearchConfig.from_toml(Path(path))
    settings = config.search
    check_mode(config.codesign.mode, get_space(config.space_name))  # before anything loads or runs
    if baseline and config.quantization.sequential_baseline:
        from nas.jobs.sequential import check_sequential

        check_sequential(config, get_space(config.space_name))
    space, objectives, constraints, catalog, extra = config.build()
    storage = storage or settings.storage
    quantized_baseline = baseline and hasattr(space, "policy") and config.quantization.sequential_baseline
    common = dict(budget=budget or settings.budget, seed=settings.seed, storage=storage, catalog=catalog,
                  batch_size=settings.batch_size or None, evaluate_locally=evaluate_locally, progress=progress,
                  config_extra=extra, wait_timeout_s=wait_timeout_s, codesign=config.codesign.mode)
    result = search(space, objectives, constraints, algorithm=settings.algorithm, job=job or settings.job or None,
                    **common)
    if not baseline:
        return ConfigSearch(result=result, storage=storage)
    sequential = None
    if quantized_baseline:
        from nas.jobs.evaluator import Evaluator
        from nas.jobs.sequential import sequential_baseline

        sequential = sequential_baseline(config, result, evaluator=Evaluator(space, objectives, constraints,
                                                                              catalog=catalog),
                                         **{k: v for k, v in common.items() if k not in ("catalog", "config_extra")})
        result.job.save_sequential_report(sequential.to_json())
    if settings.algorithm == "random":
        return ConfigSearch(result=result, storage=storage, sequential=sequential)
    from nas.jobs.results import compare_hypervolume

    base = search(space, objectives, constraints, algorithm="random", job=f"{result.name}.random", **common)
    report = compare_hypervolume(result, base)
    result.job.save_report(report.to_json())
    return ConfigSearch(result=result, storage=storage, baseline=base, report=report, sequential=sequential)

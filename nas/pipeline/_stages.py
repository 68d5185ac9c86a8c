"""The five stages of ``nas run``, one function each: ``stage(context, <earlier results it needs>)``
returns that stage's frozen result (its ``status`` — done, resumed or skipped — its figures, and
``to_json()``, the stage's entry in ``summary.json`` under ``KEY``). Stages print their results
through ``context.echo``; the files they read or write are those of :mod:`nas.pipeline.run`'s
docstring."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from tqdm import tqdm

from nas.pipeline.config import EXPORT_DIR, PROFILE_DIR, TRAIN_DIR, PipelineConfig
from search_spaces import NASError, SearchSpace, ViTSpace, get_space

if TYPE_CHECKING:
    from nas.export.subnet import ExportResult
    from nas.jobs.results import HypervolumeComparison
    from nas.pipeline._front import FrontMeasurement
    from nas.profiling.device import ProfileResult


class PipelineError(NASError, ValueError):
    """The output folder or a finished stage's outputs do not fit this config."""


@dataclass(frozen=True)
class StageContext:
    """What every stage reads: the config, the output folder, the console, the previous summary."""

    config: PipelineConfig
    out: Path
    space: SearchSpace
    progress: bool
    echo: Callable[[str], None]
    previous: Mapping[str, Any]  # the last invocation's summary.json ({} if none)


@dataclass(frozen=True)
class TrainStageResult:
    KEY: ClassVar[str] = "train"
    status: str
    val_top1: dict  # subnet -> top-1 (BN recalibrated), measured
    epochs: int

    def to_json(self) -> dict:
        return {"val_top1": dict(self.val_top1), "source": "measured", "epochs": self.epochs}


@dataclass(frozen=True)
class ProfileStageResult:
    KEY: ClassVar[str] = "profile"
    status: str
    report: ProfileResult  # the latency model's report (profile_device's)

    def to_json(self) -> dict:
        return {k: getattr(self.report, k) for k in ("device", "backend", "default_predictor", "held_out",
                                                     "repeatability", "samples")}


@dataclass(frozen=True)
class SearchStageResult:
    KEY: ClassVar[str] = "search"
    status: str
    job: str
    algorithm: str
    baseline_job: str  # random search at the same budget and seed
    storage: str
    budget: int
    evaluations: int  # counted (complete and failed, not pruned): the report's
    baseline_evaluations: int
    hypervolume: HypervolumeComparison
    predictor: Any  # the job's accuracy-predictor record (linas), or None
    result: Any = field(repr=False, compare=False)  # SearchResult of the job
    baseline: Any = field(repr=False, compare=False)  # SearchResult of the baseline

    def to_json(self) -> dict:
        return {"job": self.job, "algorithm": self.algorithm, "baseline_job": self.baseline_job,
                "storage": self.storage, "budget": self.budget, "evaluations": self.evaluations,
                "baseline_evaluations": self.baseline_evaluations, "front_size": self.hypervolume.front_size,
                "hypervolume": self.hypervolume.to_json(), "predictor": self.predictor}


@dataclass(frozen=True)
class FrontStageResult:
    KEY: ClassVar[str] = "front"
    status: str
    frame: Any  # the Pareto front (DataFrame) with the measured latency columns
    measured: tuple[FrontMeasurement, ...]  # verify_front's records
    csv: str
    png: str

    def to_json(self) -> dict:
        from nas.pipeline._front import interval_check

        return {"size": len(self.frame), "csv": self.csv, "png": self.png,
                "measured": [m.to_json() for m in self.measured], "inside_interval": interval_check(self.measured)}


@dataclass(frozen=True)
class ExportStageResult:
    KEY: ClassVar[str] = "best"
    status: str
    best: dict  # the exported subnet: objectives, latencies, parity (summary.json "best")
    report: ExportResult  # the export's report.json

    def to_json(self) -> dict:
        return self.best


# ---------------------------------------------------------------------------------------------- train
def train_stage(ctx: StageContext) -> TrainStageResult:
    """Train the supernet into ``OUT/train``; resumes from its checkpoint, skipped once complete."""
    from nas.training.train import train
    from supernets.checkpoint import CHECKPOINT_NAME, load_checkpoint

    folder, cfg = ctx.out / TRAIN_DIR, ctx.config.train
    status = "done"
    if (folder / CHECKPOINT_NAME).exists():
        meta = load_checkpoint(folder)["meta"]
        if meta["config_hash"] == cfg.hash and meta["epoch"] + 1 >= cfg.epochs:
            return _trained(ctx, TrainStageResult(status="skipped", val_top1=meta["val"], epochs=cfg.epochs))
        status = "resumed"
    result = train(cfg, out=folder, resume=status == "resumed", progress=ctx.progress)
    val = {k: v.top1 for k, v in result.val.items()}
    return _trained(ctx, TrainStageResult(status=status, val_top1=val, epochs=cfg.epochs))


def _trained(ctx: StageContext, result: TrainStageResult) -> TrainStageResult:
    space = get_space(ctx.config.train.space)
    recalibrated = "" if isinstance(getattr(space, "base", space), ViTSpace) else " (BN recalibrated)"  # no BN in a ViT
    ctx.echo(f"supernet val top-1{recalibrated}: " + ", ".join(f"{k} {v:.2%}" for k, v in result.val_top1.items()))
    return result


# -------------------------------------------------------------------------------------------- profile
def profile_stage(ctx: StageContext) -> ProfileStageResult:
    """Fit the device's latency model into ``OUT/profile``; skipped when one for the same settings is there."""
    from nas.profiling.device import profile_device, render_report
    from nas.profiling.latency_model import LatencyModel

    folder, config, settings = ctx.out / PROFILE_DIR, ctx.config, ctx.config.profile
    status = "done"
    if (folder / "latency_model.json").exists():
        report = LatencyModel.load(folder, space=ctx.space).report
        coverages = {e["coverage"] for e in (report.intervals or {}).values() if e}
        mine = {"device": config.device, "seed": settings.seed, "repeats": settings.repeats,
                "samples": settings.samples, "interval": settings.interval}
        theirs = {"device": report.device.partition("@")[0], "seed": report.seed, "repeats": report.repeats,
                  "samples": report.samples,
                  "interval": None if report.intervals is None else  # None: built before intervals
                  coverages.pop() if len(coverages) == 1 else settings.interval}  # none: too few fit subnets
        if mine != theirs:
            raise PipelineError(f"{folder} was profiled with {theirs}, the config asks for {mine}; "
                                "remove that folder or use another --out")
        status = "skipped"
    else:
        report = profile_device(ctx.space, config.device, folder, settings=settings, progress=ctx.progress)
    ctx.echo(render_report(report, folder))
    return ProfileStageResult(status=status, report=report)


# --------------------------------------------------------------------------------------------- search
def search_stage(ctx: StageContext) -> SearchStageResult:
    """Run (or extend) the configured job and its random baseline; skipped when both are done."""
    from nas.jobs.results import compare_hypervolume, load_job
    from nas.jobs.search import search

    cfg = ctx.config.search_config(ctx.out)
    settings = cfg.search
    storage = settings.storage
    jobs = (ctx.config.job, ctx.config.baseline_job)
    status = "skipped" if all(_job_done(storage, j, settings.budget) for j in jobs) else "done"
    if status != "skipped":
        space, objectives, constraints, catalog, extra = cfg.build()
        for job, algorithm in zip(jobs, (settings.algorithm, "random")):
            search(space, objectives, constraints, algorithm=algorithm, budget=settings.budget,
                   seed=settings.seed, storage=storage, job=job, batch_size=settings.batch_size or None,
                   catalog=catalog, progress=ctx.progress, config_extra=extra)
    result, baseline = (load_job(j, storage=storage, space=ctx.space, read_only=False) for j in jobs)  # report
    report = compare_hypervolume(result, baseline)
    result.job.save_report(report.to_json())
    n, n_base = report.evaluations, report.baseline_evaluations
    algorithm = result.job.job_config.algorithm or settings.algorithm  # what "auto" resolved to
    ratio = f"ratio {report.ratio}" if report.ratio is not None else "baseline front empty"
    ctx.echo(f"job {jobs[0]} ({algorithm}): {n} evaluations, front {report.front_size}; "
             f"random baseline {jobs[1]}: {n_base} evaluations, front {report.baseline_front_size}")
    ctx.echo(f"hypervolume (normalised, ref 1.1): {report.hypervolume:.4f} vs random search at equal "
             f"budget and seed {report.baseline_hypervolume:.4f} ({ratio})")
    ctx.echo(report.savings_line())
    return SearchStageResult(status=status, job=jobs[0], algorithm=algorithm, baseline_job=jobs[1],
                             storage=storage, budget=settings.budget, evaluations=n, baseline_evaluations=n_base,
                             hypervolume=report, predictor=result.job.predictor_report,
                             result=result, baseline=baseline)


def _job_done(storage: str, name: str, budget: int) -> bool:
    from nas.jobs.store import Job, list_jobs, open_storage

    optuna_storage = open_storage(storage)
    if name not in list_jobs(optuna_storage):
        return False
    job = Job.load(name, storage=optuna_storage)
    return job.status == "done" and job.job_config.budget == budget


# ---------------------------------------------------------------------------------------------- front
def front_stage(ctx: StageContext, searched: SearchStageResult) -> FrontStageResult:
    """Measure a few front members, write ``front.csv``/``front.png``; skipped when the search was
    and the previous run's files hold a front of the same size."""
    from nas.pipeline._front import (CSV_NAME, PNG_NAME, FrontMeasurement, verify_front, with_measurements,
                                     write_front)
    from nas.report.tables import figure_text, render_front_table

    cfg, latency, result = ctx.config, ctx.config.latency_objective, searched.result
    front = result.pareto()
    previous = ctx.previous.get("front")
    done = (searched.status == "skipped" and (ctx.out / CSV_NAME).exists() and (ctx.out / PNG_NAME).exists()
            and previous is not None and previous.get("size") == len(front))
    records = ([FrontMeasurement.from_json(r) for r in previous["measured"]] if done else
               verify_front(front, ctx.space, cfg.device, latency, cfg.front.measure, progress=ctx.progress,
                            latency_model=_latency_model(ctx)))
    from nas.report._accelerator import accelerator_columns

    frame = accelerator_columns(with_measurements(front, latency, records), ctx.space)
    if not done:
        write_front(ctx.out, frame, result.trials(), searched.baseline.trials(), result.objectives,
                    title=f"job {cfg.job} ({len(front)} on the front) vs random search (grey)")
    ctx.echo(render_front_table(frame, [o.name for o in result.objectives], measured=latency))
    for r in records:
        p, m = r.predicted_ms, r.measured_ms
        ctx.echo(f"trial {r.trial}: {latency} predicted {figure_text(p)} [{p.source}] vs measured "
                 f"{m.value:.3g} ± {m.spread:.2g} ms [{m.source}, {m.profile}] ({r.error_pct:+.1f}%)")
        if r.at_run_speed_ms is not None:
            own = "" if r.model_interval is None else (
                "; the model's own interval without drift [{:.3g}, {:.3g}]".format(*r.model_interval))
            ctx.echo(f"    at the profile run's machine speed (beside its reference subnet): "
                     f"{r.at_run_speed_ms.value:.3g} ms{own}")
    if records:
        ctx.echo(_front_check_line(records))
    ctx.echo(f"wrote {ctx.out / CSV_NAME} and {ctx.out / PNG_NAME}")
    return FrontStageResult(status="skipped" if done else "done", frame=frame, measured=tuple(records), csv=CSV_NAME,
                            png=PNG_NAME)


def _front_check_line(records) -> str:
    """How many re-measured members lie inside their prediction interval, or why none has one."""
    from nas.pipeline._front import interval_check
    from nas.report.tables import coverage_text

    check = interval_check(records)
    if check is None:
        if any(r.predicted_ms.source == "predicted" for r in records):
            return ("front check: no prediction interval: the latency model has none (built before intervals, "
                    "or with too few fit subnets for its coverage); rebuild it with nas profile (more --samples)")
        return f"front check: no prediction interval ({records[0].predicted_ms.source} latency)"
    nominal = f"{coverage_text(check['coverage'])} " if check["coverage"] is not None else ""
    line = (f"front check: {check['inside']} of {check['checked']} re-measured members inside their "
            f"{nominal}prediction interval")
    if check.get("inside_at_run_speed") is not None:
        line += (f"; at the profile run's machine speed, {check['inside_at_run_speed']} of "
                 f"{check['checked_at_run_speed']} inside the model's own interval")
    return line


def _latency_model(ctx: StageContext):
    """The pipeline's latency model (``OUT/profile``), or None when it cannot be read."""
    from nas.profiling.latency_model import LatencyModel, LatencyModelError

    try:
        return LatencyModel.load(ctx.out / PROFILE_DIR)
    except LatencyModelError:
        return None


# --------------------------------------------------------------------------------------------- export
def export_stage(ctx: StageContext, searched: SearchStageResult, front: FrontStageResult) -> ExportStageResult:
    """Export the most accurate front member within the latency budget into ``OUT/export``; skipped
    when that folder already holds the same arch in the same formats."""
    from nas.export.from_job import render_summary
    from nas.export.subnet import ExportResult, parse_formats
    from nas.jobs.records import metric_from_dict
    from nas.pipeline._front import pick_within_budget
    from nas.report.tables import figure_text

    cfg = ctx.config
    budget = cfg.export.latency_budget_ms
    best = pick_within_budget(front.frame, accuracy=cfg.accuracy_objective, latency=cfg.latency_objective,
                              budget_ms=budget)
    folder = ctx.out / EXPORT_DIR
    formats = list(parse_formats(cfg.export.formats))
    ctx.echo(f"best within {budget:g} ms (predicted {cfg.latency_objective}): trial {int(best['trial'])}, "
             f"arch {best['arch_id']}, {cfg.accuracy_objective} {best[cfg.accuracy_objective]:.4f}")
    old = read_json(folder / "report.json")
    if old is not None and old.get("arch_id") == best["arch_id"] and list(old.get("formats", {})) == formats:
        report, status = ExportResult.from_json(old), "skipped"
    else:
        scratch = folder if old is None else ctx.out / f".{EXPORT_DIR}.next"
        report, status = _export_files(ctx, best, scratch, formats, searched.storage), "done"
        if old is not None:  # another subnet now wins: swap the folders only once the new one is complete
            stale = ctx.out / f".{EXPORT_DIR}.old"
            shutil.rmtree(stale, ignore_errors=True)
            folder.rename(stale)
            scratch.rename(folder)
            shutil.rmtree(stale, ignore_errors=True)
    ctx.echo(render_summary(report, folder))
    record = _best_record(best, report, searched.result.objectives, budget)
    predicted = report.predicted_latency_ms
    for fmt, entry in report.formats.items():
        m = entry["latency_ms"]
        beside = (f" | predicted {figure_text(metric_from_dict({'unit': 'ms', **predicted}))} [{predicted['source']}, "
                  f"{predicted['backend']}]" if predicted and predicted["backend"] == entry["backend"] else "")
        ctx.echo(f"{fmt:<6} ({entry['backend']}): measured {m['value']:.3g} ± {m['spread']:.2g} ms "
                 f"[{m['source']}, {m['profile']}]{beside}")
    return ExportStageResult(status=status, best=record, report=report)


def _export_files(ctx: StageContext, best, folder: Path, formats: list[str], storage: str) -> ExportResult:
    """``resolve_and_export`` of ``best``'s trial into ``folder``, with a progress bar over its steps."""
    from nas.export.from_job import resolve_and_export

    bar = tqdm(total=len(formats) + 1, desc="export", unit="step", disable=not ctx.progress, dynamic_ncols=True)
    steps: list[str] = []

    def log(message: str) -> None:  # "exporting torch", ..., "timing the exported files"
        if steps:
            bar.update(1)
        steps.append(message)
        bar.set_postfix_str(message)

    if folder.name.startswith("."):  # a scratch folder left by an interrupted swap
        shutil.rmtree(folder, ignore_errors=True)
    try:
        report = resolve_and_export(
            out=folder, formats=formats, job=ctx.config.job, trial=int(best["trial"]), storage=storage,
            checkpoint=ctx.out / TRAIN_DIR, device=ctx.config.device, latency_model=ctx.out / PROFILE_DIR,
            repeats=ctx.config.export.repeats, log=log)
        bar.update(bar.total - bar.n)
    finally:
        bar.close()
    return report


def _best_record(best, report: ExportResult, objectives, budget: float) -> dict:
    """The exported subnet: its objectives (with provenance, and a predicted one's interval and
    coverage), measured latency per format, the prediction, and parity per format."""
    from nas.jobs.results import row_metric

    def value(v):
        return None if v != v else (v.item() if hasattr(v, "item") else v)  # NaN -> None

    def objective(name: str) -> dict:
        m = row_metric(best, name)
        return {"value": value(best[name]), "source": m.source, "profile": m.profile, "spread": m.spread,
                "interval": None if m.interval is None else list(m.interval), "coverage": m.coverage}

    return {
        "trial": int(best["trial"]), "arch_id": best["arch_id"], "latency_budget_ms": budget,
        "objectives": {o.name: objective(o.name) for o in objectives},
        "latency_ms": {"predicted": report.predicted_latency_ms,
                       "measured": {fmt: {**e["latency_ms"], "backend": e["backend"]}
                                    for fmt, e in report.formats.items()}},
        "parity_max_abs_diff": {fmt: e["parity"]["max_abs_diff"] for fmt, e in report.formats.items()},
        "export": EXPORT_DIR, "weights": report.weights,
    }


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; ``None`` if missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

"""``nas run CONFIG --out DIR``: the end-to-end quickstart, one stage after another.

1. **train** a once-for-all supernet (``nas.training.train``) into ``DIR/train``;
2. **profile** the cpu device: its latency model (``nas.profiling.device.profile_device``) into ``DIR/profile``;
3. **search**: the configured job (e.g. ``linas``, the accuracy predictor in the loop; device latency
   predicted by the stage-2 model, MCU/FPGA metrics estimated) and the random-search baseline at
   the same budget and seed (job ``NAME.random``), both in the SQLite store ``DIR/nas.db``;
4. **front**: a few front members' latency measured beside the prediction, the front printed as a
   table and written to ``DIR/front.csv`` and ``DIR/front.png`` (baseline in grey);
5. **export** the most accurate front member whose predicted latency is within
   ``[export] latency_budget_ms`` to torch, ONNX and TVM (``nas.export._job_member.resolve_and_export``:
   parity-checked, measured on this host, the prediction beside it) into ``DIR/export``.

Contract: every stage prints a one-line header and shows tqdm progress bars with ETAs on stderr;
results go to stdout. ``DIR/summary.json`` (atomic) holds each stage's status and wall time,
``total_s`` (this invocation), the front size, the hypervolume against the baseline and the exported
subnet's measured and predicted latencies, every figure with its provenance. Rerunning the same
command resumes: a stage whose own outputs are complete is skipped (the checkpoint's last epoch, the
latency model, the jobs' ``done`` status and budget, ``front.csv``/``front.png``, the export's
``report.json`` for the same arch); training resumes from its checkpoint and the search extends the
same jobs. A bad config fails before anything is written (one line, ``NASError``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from nas.pipeline.config import EXPORT_DIR, PROFILE_DIR, STORE_NAME, TRAIN_DIR, QuickstartConfig
from search_spaces import NASError, get_space
from supernets.checkpoint import atomic_write_bytes

SUMMARY_NAME = "summary.json"
STAGES = ("train", "profile", "search", "front", "export")


class QuickstartError(NASError, ValueError):
    """The output folder or a finished stage's outputs do not fit this config."""


class _Run:
    """One invocation: the output folder, the console, and the summary built stage by stage."""

    def __init__(self, config: QuickstartConfig, out: Path, progress: bool, echo: Callable[[str], None]) -> None:
        self.config, self.out, self.progress, self.echo = config, out, progress, echo
        self.space = get_space(config.train.space)
        self.summary: dict = {"config": config.to_dict(), "out": str(out), "stages": {}}
        self.previous = _read_json(out / SUMMARY_NAME) or {}

    def stage(self, name: str, description: str, fn: Callable[[], str]) -> None:
        """Run ``fn`` (returns its status: done, resumed or skipped) under a header; record its wall time."""
        index = STAGES.index(name) + 1
        self.echo(f"\n[{index}/{len(STAGES)}] {name}: {description}")
        started = time.perf_counter()
        status = fn()
        wall = round(time.perf_counter() - started, 1)
        record = {"status": status, "wall_s": wall}
        if status == "skipped" and name in self.previous.get("stages", {}):
            record["first_run_wall_s"] = self.previous["stages"][name].get("first_run_wall_s",
                                                                           self.previous["stages"][name]["wall_s"])
        self.summary["stages"][name] = record
        self.echo(f"[{index}/{len(STAGES)}] {name}: {status} in {wall:.1f} s")
        self.write_summary()

    def write_summary(self) -> None:
        self.summary["total_s"] = round(sum(s["wall_s"] for s in self.summary["stages"].values()), 1)
        atomic_write_bytes(self.out / SUMMARY_NAME, (json.dumps(self.summary, indent=2) + "\n").encode())

    # ------------------------------------------------------------------ stages
    def train(self) -> str:
        from nas.training.train import train
        from supernets.checkpoint import CHECKPOINT_NAME, load_checkpoint

        folder, cfg = self.out / TRAIN_DIR, self.config.train
        status = "done"
        if (folder / CHECKPOINT_NAME).exists():
            meta = load_checkpoint(folder)["meta"]
            if meta["config_hash"] == cfg.hash and meta["epoch"] + 1 >= cfg.epochs:
                self.summary["train"] = {"val_top1": meta["val"], "source": "measured", "epochs": cfg.epochs}
                self._echo_train(meta["val"])
                return "skipped"
            status = "resumed"
        result = train(cfg, out=folder, resume=status == "resumed", progress=self.progress)
        val = {k: v.top1 for k, v in result.val.items()}
        self.summary["train"] = {"val_top1": val, "source": "measured", "epochs": cfg.epochs}
        self._echo_train(val)
        return status

    def _echo_train(self, val: dict) -> None:
        self.echo("supernet val top-1 (BN recalibrated): " + ", ".join(f"{k} {v:.2%}" for k, v in val.items()))

    def profile(self) -> str:
        from nas.profiling.latency_model import LatencyModel
        from nas.profiling.device import profile_device, render_report

        folder, settings = self.out / PROFILE_DIR, self.config.profile
        status = "done"
        if (folder / "latency_model.json").exists():
            report = LatencyModel.load(folder, space=self.space).report
            mine = {"device": self.config.device, "seed": settings.seed, "repeats": settings.repeats}
            theirs = {"device": report["device"].partition("@")[0], "seed": report["seed"],
                      "repeats": report["repeats"]}
            if mine != theirs:
                raise QuickstartError(f"{folder} was profiled with {theirs}, the config asks for {mine}; "
                                      "remove that folder or use another --out")
            status = "skipped"
        else:
            report = profile_device(self.space, self.config.device, folder, settings=settings, progress=self.progress)
        best = report["default_predictor"]
        self.summary["profile"] = {"device": report["device"], "backend": report["backend"],
                                   "default_predictor": best, "held_out": report["held_out"],
                                   "repeatability": report["repeatability"], "samples": report["samples"]}
        self.echo(render_report(report, folder))
        return status

    def search(self) -> str:
        from nas.jobs.results import compare_hypervolume, load_job
        from nas.jobs.search import search

        cfg = self.config.search_config(self.out)
        settings = cfg.search
        storage = settings.storage
        jobs = (self.config.job, self.config.baseline_job)
        status = "skipped" if all(_job_done(storage, j, settings.budget) for j in jobs) else "done"
        if status != "skipped":
            space, objectives, constraints, catalog, extra = cfg.build()
            for job, algorithm in zip(jobs, (settings.algorithm, "random")):
                search(space, objectives, constraints, algorithm=algorithm, budget=settings.budget,
                       seed=settings.seed, storage=storage, job=job, batch_size=settings.batch_size or None,
                       catalog=catalog, progress=self.progress, config_extra=extra)
        self.result, self.baseline = (load_job(j, storage=storage, space=self.space) for j in jobs)
        report = compare_hypervolume(self.result, self.baseline)
        self.result.job.study.set_user_attr("report", report)
        n, n_base = (int((r.trials()["state"] != "pruned").sum()) for r in (self.result, self.baseline))
        self.summary["search"] = {"job": jobs[0], "algorithm": settings.algorithm, "baseline_job": jobs[1],
                                  "storage": storage, "budget": settings.budget, "evaluations": n,
                                  "baseline_evaluations": n_base, "front_size": report["front_size"],
                                  "hypervolume": report,
                                  "predictor": self.result.job.study.user_attrs.get("predictor")}
        ratio = f"ratio {report['ratio']}" if report["ratio"] is not None else "baseline front empty"
        self.echo(f"job {jobs[0]} ({settings.algorithm}): {n} evaluations, front {report['front_size']}; "
                  f"random baseline {jobs[1]}: {n_base} evaluations, front {report['baseline_front_size']}")
        self.echo(f"hypervolume (normalised, ref 1.1): {report['hypervolume']:.4f} vs random search at equal "
                  f"budget and seed {report['baseline_hypervolume']:.4f} ({ratio})")
        self.search_status = status
        return status

    def front(self) -> str:
        from nas.pipeline._front import (CSV_NAME, PNG_NAME, render_front_table, verify_front, with_measurements,
                                          write_front)

        cfg, latency = self.config, self.config.latency_objective
        front = self.result.pareto()
        previous = self.previous.get("front")
        done = (self.search_status == "skipped" and (self.out / CSV_NAME).exists() and (self.out / PNG_NAME).exists()
                and previous is not None and previous.get("size") == len(front))
        records = previous["measured"] if done else verify_front(front, self.space, cfg.device, latency,
                                                                 cfg.front.measure, progress=self.progress)
        self.frame = with_measurements(front, latency, records)
        if not done:
            write_front(self.out, self.frame, self.result.trials(), self.baseline.trials(), self.result.objectives,
                        title=f"job {cfg.job} ({len(front)} on the front) vs random search (grey)")
        self.summary["front"] = {"size": len(front), "csv": CSV_NAME, "png": PNG_NAME, "measured": records}
        self.echo(render_front_table(self.frame, self.result.objectives, latency))
        for r in records:
            p, m = r["predicted_ms"], r["measured_ms"]
            self.echo(f"trial {r['trial']}: {latency} predicted {p['value']:.3g} ms [{p['source']}] vs measured "
                      f"{m['value']:.3g} ± {m['spread']:.2g} ms [{m['source']}, {m['profile']}] "
                      f"({r['error_pct']:+.1f}%)")
        self.echo(f"wrote {self.out / CSV_NAME} and {self.out / PNG_NAME}")
        return "skipped" if done else "done"

    def export(self) -> str:
        from nas.export.subnet import parse_formats
        from nas.export._job_member import render_summary
        from nas.pipeline._front import pick_within_budget

        cfg = self.config
        budget = cfg.export.latency_budget_ms
        best = pick_within_budget(self.frame, accuracy=cfg.accuracy_objective, latency=cfg.latency_objective,
                                  budget_ms=budget)
        folder = self.out / EXPORT_DIR
        formats = list(parse_formats(cfg.export.formats))
        self.echo(f"best within {budget:g} ms (predicted {cfg.latency_objective}): trial {int(best['trial'])}, "
                  f"arch {best['arch_id']}, {cfg.accuracy_objective} {best[cfg.accuracy_objective]:.4f}")
        old = _read_json(folder / "report.json")
        if old is not None and old.get("arch_id") == best["arch_id"] and list(old.get("formats", {})) == formats:
            report, status = old, "skipped"
        else:
            report, status = self._export(best, folder if old is None else self.out / f".{EXPORT_DIR}.next",
                                          formats), "done"
            if old is not None:  # another subnet now wins: swap the folders only once the new one is complete
                stale = self.out / f".{EXPORT_DIR}.old"
                shutil.rmtree(stale, ignore_errors=True)
                folder.rename(stale)
                (self.out / f".{EXPORT_DIR}.next").rename(folder)
                shutil.rmtree(stale, ignore_errors=True)
        self.echo(render_summary(report, folder))
        self.summary["best"] = _best_record(best, report, self.result.objectives, budget)
        predicted = report.get("predicted_latency_ms")
        for fmt, entry in report["formats"].items():
            m = entry["latency_ms"]
            beside = (f" | predicted {predicted['value']:.3g} ms [{predicted['source']}, {predicted['backend']}]"
                      if predicted and predicted["backend"] == entry["backend"] else "")
            self.echo(f"{fmt:<6} ({entry['backend']}): measured {m['value']:.3g} ± {m['spread']:.2g} ms "
                      f"[{m['source']}, {m['profile']}]{beside}")
        return status

    def _export(self, best, folder: Path, formats: list[str]) -> dict:
        from nas.export._job_member import resolve_and_export

        bar = tqdm(total=len(formats) + 1, desc="export", unit="step", disable=not self.progress, dynamic_ncols=True)
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
                out=folder, formats=formats, job=self.config.job, trial=int(best["trial"]),
                storage=self.summary["search"]["storage"], checkpoint=self.out / TRAIN_DIR, device=self.config.device,
                latency_model=self.out / PROFILE_DIR, repeats=self.config.export.repeats, log=log)
            bar.update(bar.total - bar.n)
        finally:
            bar.close()
        return report


def run_quickstart(config: QuickstartConfig, out: Path, *, progress: bool = True,
                   echo: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) the pipeline of the module docstring into ``out``; returns the summary."""
    out = Path(out)
    _check_out(out)
    run = _Run(config, out, progress, echo or (lambda line: print(line, flush=True)))
    t = config.train
    run.stage("train", f"{t.space} supernet on {t.data} ({t.strategy}, {t.epochs} epochs) -> {out / TRAIN_DIR}",
              run.train)
    run.stage("profile", f"{config.device} latency model ({config.profile.samples} subnets, "
              f"{config.profile.coverage} coverage) -> {out / PROFILE_DIR}", run.profile)
    run.stage("search", f"{config.search_table.get('algorithm', 'nsga2')} job {config.job} and random baseline, "
              f"{config.search_config(out).search.budget} evaluations each -> {out / STORE_NAME}", run.search)
    run.stage("front", f"Pareto front, {config.front.measure} members' latency measured -> front.csv, front.png",
              run.front)
    run.stage("export", f"most accurate subnet within {config.export.latency_budget_ms:g} ms -> {out / EXPORT_DIR}",
              run.export)
    run.echo(f"\ndone in {run.summary['total_s']:.0f} s: {out / SUMMARY_NAME}")
    return run.summary


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise QuickstartError(f"--out {str(out)!r} is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()):
        ours = {TRAIN_DIR, PROFILE_DIR, STORE_NAME, SUMMARY_NAME}
        if not ours & {p.name for p in out.iterdir()}:
            raise QuickstartError(f"--out {str(out)!r} is not empty and holds no `nas run` output; choose a new folder")


def _job_done(storage: str, name: str, budget: int) -> bool:
    from nas.jobs.store import Job, list_jobs, open_storage

    optuna_storage = open_storage(storage)
    if name not in list_jobs(optuna_storage):
        return False
    job = Job.load(name, storage=optuna_storage)
    return job.study.user_attrs.get("status") == "done" and job.config.get("budget") == budget


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _best_record(best, report: dict, objectives, budget: float) -> dict:
    """The exported subnet: its objectives (with provenance), measured latency per format, the
    prediction, and parity per format."""
    def value(v):
        return None if v != v else (v.item() if hasattr(v, "item") else v)  # NaN -> None

    return {
        "trial": int(best["trial"]), "arch_id": best["arch_id"], "latency_budget_ms": budget,
        "objectives": {o.name: {"value": value(best[o.name]), "source": best[f"{o.name}.source"],
                                "profile": best[f"{o.name}.profile"], "spread": value(best[f"{o.name}.spread"])}
                       for o in objectives},
        "latency_ms": {"predicted": report.get("predicted_latency_ms"),
                       "measured": {fmt: {**e["latency_ms"], "backend": e["backend"]}
                                    for fmt, e in report["formats"].items()}},
        "parity_max_abs_diff": {fmt: e["parity"]["max_abs_diff"] for fmt, e in report["formats"].items()},
        "export": EXPORT_DIR, "weights": report["weights"],
    }

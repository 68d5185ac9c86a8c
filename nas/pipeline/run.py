"""``nas run CONFIG --out DIR``: the end-to-end pipeline, one stage after another; each stage is a
function of :mod:`nas.pipeline._stages` returning its own frozen result, passed on to the stages that need it.

1. **train** a once-for-all supernet (``nas.training.train``) into ``DIR/train``;
2. **profile** the cpu device: its latency model (``nas.profiling.device.profile_device``) into ``DIR/profile``;
3. **search**: the configured job (``[search] job``, by default the config file's name; e.g. with
   ``linas``, the accuracy predictor in the loop; device latency predicted by the stage-2 model,
   MCU/FPGA metrics estimated) and the random-search baseline at
   the same budget and seed (job ``NAME.random``), both in the SQLite store ``DIR/nas.db``;
4. **front**: a few front members' latency measured beside the prediction, the front printed as a
   table and written to ``DIR/front.csv`` and ``DIR/front.png`` (baseline in grey);
5. **export** the most accurate front member whose predicted latency is within
   ``[export] latency_budget_ms`` to torch, ONNX and TVM (``nas.export.from_job.resolve_and_export``:
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
import time
from pathlib import Path
from typing import Callable

from nas.pipeline._stages import (PipelineError, StageContext, export_stage, front_stage, profile_stage, read_json,
                                  search_stage, train_stage)
from nas.pipeline.config import EXPORT_DIR, PROFILE_DIR, STORE_NAME, TRAIN_DIR, PipelineConfig
from search_spaces import get_space
from supernets.checkpoint import atomic_write_bytes

__all__ = ["PipelineError", "run_pipeline", "SUMMARY_NAME", "STAGES"]

SUMMARY_NAME = "summary.json"
STAGES = ("train", "profile", "search", "front", "export")


def run_pipeline(config: PipelineConfig, out: Path, *, progress: bool = True,
                 echo: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) the pipeline of the module docstring into ``out``; returns the summary."""
    out = Path(out)
    _check_out(out)
    ctx = StageContext(config=config, out=out, space=get_space(config.train.space), progress=progress,
                       echo=echo or (lambda line: print(line, flush=True)),
                       previous=read_json(out / SUMMARY_NAME) or {})
    summary: dict = {"config": config.to_dict(), "out": str(out), "stages": {}}
    t = config.train
    _stage(ctx, summary, "train", f"{t.space} supernet on {t.data} ({t.strategy}, {t.epochs} epochs) -> "
           f"{out / TRAIN_DIR}", lambda: train_stage(ctx))
    _stage(ctx, summary, "profile", f"{config.device} latency model ({config.profile.samples} subnets, "
           f"{config.profile.coverage} coverage) -> {out / PROFILE_DIR}", lambda: profile_stage(ctx))
    searched = _stage(ctx, summary, "search", f"{config.search_table.get('algorithm', 'auto')} job {config.job} "
                      f"and random baseline, {config.search_config(out).search.budget} evaluations each -> "
                      f"{out / STORE_NAME}", lambda: search_stage(ctx))
    front = _stage(ctx, summary, "front", f"Pareto front, {config.front.measure} members' latency measured -> "
                   "front.csv, front.png", lambda: front_stage(ctx, searched))
    _stage(ctx, summary, "export", f"most accurate subnet within {config.export.latency_budget_ms:g} ms -> "
           f"{out / EXPORT_DIR}", lambda: export_stage(ctx, searched, front))
    ctx.echo(f"\ndone in {summary['total_s']:.0f} s: {out / SUMMARY_NAME}")
    return summary


def _stage(ctx: StageContext, summary: dict, name: str, description: str, fn: Callable):
    """Run ``fn`` under a header, record its result and wall time in ``summary`` and write it; returns
    the stage's result."""
    index = STAGES.index(name) + 1
    ctx.echo(f"\n[{index}/{len(STAGES)}] {name}: {description}")
    started = time.perf_counter()
    result = fn()
    wall = round(time.perf_counter() - started, 1)
    record = {"status": result.status, "wall_s": wall}
    previous = ctx.previous.get("stages", {}).get(name)
    if result.status == "skipped" and previous is not None:
        record["first_run_wall_s"] = previous.get("first_run_wall_s", previous["wall_s"])
    summary[result.KEY] = result.to_json()
    summary["stages"][name] = record
    ctx.echo(f"[{index}/{len(STAGES)}] {name}: {result.status} in {wall:.1f} s")
    summary["total_s"] = round(sum(s["wall_s"] for s in summary["stages"].values()), 1)
    atomic_write_bytes(ctx.out / SUMMARY_NAME, (json.dumps(summary, indent=2) + "\n").encode())
    return result


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--out {str(out)!r} is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()):
        ours = {TRAIN_DIR, PROFILE_DIR, STORE_NAME, SUMMARY_NAME}
        if not ours & {p.name for p in out.iterdir()}:
            raise PipelineError(f"--out {str(out)!r} is not empty and holds no `nas run` output; choose a new folder")

"""``train``: the supernet training job behind ``nas train`` (one process or many via torchrun).

Output directory: ``checkpoint.pt`` (atomic, after every epoch), ``config.json``,
``train_log.jsonl`` (one JSON object per event) and, for progressive shrinking, ``teacher.pt``.
``resume=True`` continues from the last checkpoint and reproduces the uninterrupted run exactly:
every epoch's randomness derives from (seed, epoch) only.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nas.data import DataSource, load_data
from nas.training.distributed import (DistContext, broadcast_buffers, gather_fingerprints, init_distributed,
                                      shutdown_distributed)
from nas.training.config import ConfigError, TrainConfig
from search_spaces import NASError
from supernets import Supernet, create_supernet
from supernets.checkpoint import (CHECKPOINT_NAME, atomic_torch_save, atomic_write_bytes, capture_rng_state,
                                  load_checkpoint, save_checkpoint)
from supernets.evaluate import EvalResult, evaluate
from supernets.training.loop import StepInfo, stage_at, train_steps
from supernets.training.strategies import ProgressiveShrinking, SandwichRule, Stage, TrainingStrategy

LOG_NAME = "train_log.jsonl"
TEACHER_NAME = "teacher.pt"
CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class TrainSummary:
    out: Path
    epochs_run: int
    global_step: int
    val: dict[str, EvalResult]
    fingerprints: list[str]


def build_strategy(config: TrainConfig) -> TrainingStrategy:
    if config.strategy == "sandwich":
        return SandwichRule(n_random=config.n_random, label_smoothing=config.label_smoothing)
    return ProgressiveShrinking(fractions=config.ps_fractions, kd_ratio=config.kd_ratio,
                                label_smoothing=config.label_smoothing)


def build_supernet(config: TrainConfig, data: DataSource) -> Supernet:
    return create_supernet(config.space, num_classes=data.num_classes, in_channels=data.in_channels,
                           seed=config.seed)


def build_optimizer(supernet: Supernet, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum; no weight decay on BN parameters, biases and kernel transforms."""
    decay, no_decay = [], []
    for name, p in supernet.named_parameters():
        (no_decay if p.ndim <= 1 or "transforms" in name else decay).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=config.lr, momentum=config.momentum, nesterov=True)


def probe_archs(supernet: Supernet, seed: int) -> dict:
    """The subnets logged every epoch: largest, smallest and one fixed random subnet."""
    space = supernet.space
    return {"largest": space.largest(), "smallest": space.smallest(),
            "random": space.sample(np.random.default_rng([seed, 7919]))}


def evaluate_probes(supernet: Supernet, data: DataSource, config: TrainConfig, device) -> dict[str, EvalResult]:
    results = {}
    for label, arch in probe_archs(supernet, config.seed).items():
        results[label] = evaluate(
            supernet, arch, data.val_batches(batch_size=config.eval_batch_size),
            calib_batches=data.calib_batches(batch_size=config.batch_size, seed=config.seed),
            n_calib_batches=config.calib_batches, device=device)
    return results


class _Log:
    """Console (through tqdm) and JSON lines next to the checkpoint; only rank 0 writes."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.path, self.enabled = out / LOG_NAME, enabled

    def event(self, event: str, console: str | None = None, **fields) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, "time": round(time.time(), 3), **fields}) + "\n")
        if console:
            tqdm.write(console, file=sys.stderr)  # stdout stays free for results


def _prepare_out(out: Path, config: TrainConfig, resume: bool) -> dict | None:
    """Check the output directory; return the checkpoint to resume from (or None)."""
    has_checkpoint = (out / CHECKPOINT_NAME).exists()
    if not resume:
        if has_checkpoint:
            raise ConfigError(f"{out} already holds a checkpoint; pass --resume to continue it or choose another --out")
        return None  # leftovers of a run killed before its first checkpoint are cleared by the caller
    if not has_checkpoint:
        raise ConfigError(f"--resume: no checkpoint in {out}; start without --resume")
    state = load_checkpoint(out)
    meta = state["meta"]
    if meta["config_hash"] != config.hash:
        saved = meta.get("config", {})
        diff = sorted(k for k, v in config.to_dict().items() if saved.get(k) != v)
        raise ConfigError(f"--resume: settings differ from the checkpoint's ({', '.join(diff) or 'unknown'}); "
                          "use the same settings or a new --out")
    return state


def train(config: TrainConfig, *, out: Path, resume: bool = False, progress: bool = True) -> TrainSummary:
    """Run (or resume) a training job; see the module docstring for what lands in ``out``."""
    ctx = init_distributed()
    # Denormal activations made CPU steps 5x slower mid-training (measured); flushing them to
    # zero changes no result that matters.
    torch.set_flush_denormal(True)
    try:
        return _train(config, Path(out), resume, progress, ctx)
    finally:
        shutdown_distributed(ctx)


def _train(config: TrainConfig, out: Path, resume: bool, progress: bool, ctx: DistContext) -> TrainSummary:
    state = _prepare_out(out, config, resume)
    # Bad data or settings fail here, before anything is written to ``out``.
    data = load_data(config.data, seed=config.seed, val_fraction=config.val_fraction, image_size=config.image_size)
    steps = _steps_per_epoch(config, data, ctx)
    ctx.barrier()  # every rank has checked the directory before rank 0 writes to it
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    supernet = build_supernet(config, data).to(ctx.device)
    optimizer = build_optimizer(supernet, config)
    strategy = build_strategy(config)
    plan = strategy.plan(steps * config.epochs)
    log = _Log(out, ctx.is_main)
    start_epoch, global_step = _begin(out, config, state, supernet, optimizer, log, data=data, steps=steps, ctx=ctx)
    ctx.barrier()
    on_stage_start = _stage_hook(strategy, supernet, out, log, ctx)
    bar = tqdm(total=steps * config.epochs, initial=global_step, unit="step", desc="train",
               disable=not (progress and ctx.is_main), dynamic_ncols=True)

    def on_step(info: StepInfo) -> None:
        bar.update(1)
        bar.set_postfix(stage=info.stage.name, loss=f"{info.loss:.3f}", lr=f"{info.lr:.4f}", refresh=False)

    val: dict[str, EvalResult] = {}
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.time()
            rng = np.random.default_rng([config.seed, epoch])  # identical on every rank
            torch.manual_seed(config.seed * 100_003 + epoch)  # dropout
            batches = islice(data.train_batches(batch_size=config.batch_size, seed=config.seed, epoch=epoch,
                                                rank=ctx.rank, world_size=ctx.world_size), steps)
            global_step, loss = train_steps(
                supernet, strategy, plan, batches, optimizer, base_lr=config.lr, rng=rng, global_step=global_step,
                device=ctx.device, distributed=ctx.distributed, on_stage_start=on_stage_start, on_step=on_step)
            broadcast_buffers(supernet, ctx)
            val = evaluate_probes(supernet, data, config, ctx.device) if ctx.is_main else {}
            if ctx.is_main:
                stage = stage_at(plan, global_step - 1).name
                _end_epoch(out, config, supernet, optimizer, log, epoch=epoch, stage=stage, global_step=global_step,
                           loss=loss, val=val, started=started, world_size=ctx.world_size)
            ctx.barrier()
    finally:
        bar.close()
    fingerprints = gather_fingerprints(supernet, ctx)
    log.event("done", f"done: {config.epochs} epochs, checkpoint {out / CHECKPOINT_NAME}",
              global_step=global_step, fingerprints=fingerprints, ranks_in_sync=len(set(fingerprints)) == 1)
    return TrainSummary(out, config.epochs - start_epoch, global_step, val, fingerprints)


def _steps_per_epoch(config: TrainConfig, data: DataSource, ctx: DistContext) -> int:
    """Full batches per process and epoch (capped by ``steps_per_epoch``); ``ConfigError`` if none."""
    try:
        steps = data.steps_per_epoch(batch_size=config.batch_size, world_size=ctx.world_size)
    except ValueError:
        steps = 0
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch)
    if steps < 1:
        raise ConfigError(f"batch_size={config.batch_size} leaves no full batch per process in {config.data} "
                          f"({data.n_train} training images, {ctx.world_size} process(es)); use a smaller --batch-size")
    return steps


def _begin(out: Path, config: TrainConfig, state: dict | None, supernet: Supernet, optimizer: torch.optim.Optimizer,
           log: _Log, *, data: DataSource, steps: int, ctx: DistContext) -> tuple[int, int]:
    """Load the checkpoint ``state`` (resume) or start a fresh ``out``; returns (first epoch, global step)."""
    if state is not None:
        supernet.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, global_step = state["meta"]["epoch"] + 1, state["meta"]["global_step"]
        log.event("resume", f"resuming {out} after epoch {start_epoch}", epoch=start_epoch - 1,
                  global_step=global_step, checkpoint_sha256=state["sha256"])
        return start_epoch, global_step
    if ctx.is_main:
        for leftover in (out / TEACHER_NAME, out / LOG_NAME):
            leftover.unlink(missing_ok=True)
        atomic_write_bytes(out / CONFIG_NAME, json.dumps(config.to_dict(), indent=2).encode())
        log.event("start", f"training {config.space} on {data.name} with {config.strategy}: {config.epochs} epochs "
                  f"x {steps} steps, {ctx.world_size} process(es) on {ctx.device}",
                  config=config.to_dict(), world_size=ctx.world_size, device=str(ctx.device))
    return 0, 0


def _stage_hook(strategy: TrainingStrategy, supernet: Supernet, out: Path, log: _Log, ctx: DistContext):
    """``on_stage_start`` for ``train_steps``: snapshots the progressive-shrinking teacher when the
    full stage ends, and logs each stage once per process."""
    logged_stages: set[str] = set()

    def on_stage_start(stage: Stage) -> None:
        if isinstance(strategy, ProgressiveShrinking) and stage.name != "full" and strategy.teacher is None:
            strategy.set_teacher(_teacher(supernet, out, ctx))
        if stage.name not in logged_stages:  # also runs at every epoch start; log each stage once per process
            logged_stages.add(stage.name)
            log.event("stage", f"stage {stage.name}: steps {stage.start}-{stage.end}", stage=stage.name,
                      start=stage.start, end=stage.end)

    return on_stage_start


def _end_epoch(out: Path, config: TrainConfig, supernet: Supernet, optimizer: torch.optim.Optimizer, log: _Log, *,
               epoch: int, stage: str, global_step: int, loss: float, val: dict[str, EvalResult], started: float,
               world_size: int) -> None:
    """Rank 0 after an epoch: the checkpoint (atomic) and the epoch's log line."""
    meta = {"space": supernet.space.name, "space_version": supernet.space.version,
            "config_hash": config.hash, "config": config.to_dict(), "strategy": config.strategy,
            "stage": stage, "epoch": epoch, "global_step": global_step,
            "rng": capture_rng_state(), "world_size": world_size,
            "val": {k: v.top1 for k, v in val.items()}}
    save_checkpoint(out, model_state=supernet.state_dict(), optimizer_state=optimizer.state_dict(), meta=meta)
    summary = " ".join(f"{k} {v.top1:.2%}" for k, v in val.items())
    log.event("epoch", f"epoch {epoch + 1}/{config.epochs} [{stage}] loss {loss:.3f} | val top1 "
              f"{summary} | {time.time() - started:.0f} s", epoch=epoch, stage=stage,
              global_step=global_step, train_loss=loss, seconds=round(time.time() - started, 2),
              val={k: {"top1": v.top1, "loss": v.loss, "n": v.n} for k, v in val.items()})


def _teacher(supernet: Supernet, out: Path, ctx: DistContext) -> torch.nn.Module:
    """The frozen full network for progressive shrinking: snapshotted when the first stage ends
    (saved as teacher.pt), reloaded from that file by a resumed run."""
    teacher = supernet.extract(supernet.space.largest()).to(ctx.device)
    path = out / TEACHER_NAME
    if path.exists():
        try:
            teacher.load_state_dict(torch.load(path, weights_only=True, map_location=ctx.device))
            return teacher
        except (RuntimeError, OSError, ValueError) as err:
            raise NASError(f"cannot load {path}: {err}; delete it to snapshot a new teacher") from None
    ctx.barrier()
    if ctx.is_main:
        atomic_torch_save(teacher.state_dict(), path)
    return teacher

"""``train``: the supernet training job behind ``nas train`` (one process or many via torchrun).

Output directory: ``checkpoint.pt`` (atomic, after every epoch), ``config.json``,
``train_log.jsonl`` (one JSON object per event) and, for progressive shrinking, ``teacher.pt``.
``resume=True`` continues from the last checkpoint and reproduces the uninterrupted run exactly:
every epoch's randomness derives from (seed, epoch) only.

What ``out`` may be (checked on every rank before anything is written; a refusal is a one-line
``ConfigError`` and touches nothing):

- a new run (``resume=False``): a missing or empty folder, or the leftovers of a run with the same
  settings that was stopped before its first checkpoint (only the files above, ``config.json`` equal
  to these settings, no ``checkpoint.pt``), which it starts over. Anything else is refused: a file, a
  folder with a checkpoint (pass ``resume=True``) or with anything a run of these settings did not write.
- a resumed run (``resume=True``): a folder that holds a previous run: its ``checkpoint.pt`` (same
  settings) or the leftovers above (started over: there is nothing to resume from), and nothing but the
  files above (and their atomic-write temporaries). A missing or empty folder is refused.

The log after a resume reads as if the run had never stopped: events after the checkpoint's epoch
(the interrupted epoch's stage events, a ``done`` of a finished run) are dropped, the checkpoint's own
``epoch`` event is restored from the checkpoint if the kill fell between the two writes, then a
``resume`` event is appended; each stage is logged once and each epoch once. A log line that is not
one of ours (not a JSON object with an ``event``) is refused, except a torn last line, which is dropped.
"""

from __future__ import annotations

import json
import math
import re
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
                                  load_checkpoint, remove_stale_temp_files, save_checkpoint)
from supernets.evaluate import EvalResult, evaluate
from supernets.training.loop import StepInfo, stage_at, train_steps
from supernets.training.strategies import ProgressiveShrinking, SandwichRule, Stage, TrainingStrategy

LOG_NAME = "train_log.jsonl"
TEACHER_NAME = "teacher.pt"
CONFIG_NAME = "config.json"
RUN_FILES = (CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME, TEACHER_NAME)  # what a run writes into ``out``
# What ``nas eval`` caches next to the checkpoint (``CACHE_NAME`` of nas.training.evaluation and .quantized):
# a resumed folder may hold them too.
EVAL_CACHE_FILES = ("eval_cache.json", "quant_eval_cache.json")
_OURS = RUN_FILES + EVAL_CACHE_FILES
_TEMP_FILE = re.compile(rf"\.(?:{'|'.join(map(re.escape, _OURS))})\.[0-9]+\.[0-9a-f]{{8}}\.tmp")


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
    """``config.optimizer``: SGD with Nesterov momentum (``sgd``) or AdamW (``adamw``; ``momentum`` unused).
    Two parameter groups: weight decay on the rest, none on norms (BN, LayerNorm), biases, kernel
    transforms and what the supernet's ``no_weight_decay()`` names (a ViT's cls token and position
    embeddings)."""
    skip = supernet.no_weight_decay() if hasattr(supernet, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in supernet.named_parameters():
        (no_decay if p.ndim <= 1 or "transforms" in name or name in skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)


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


def _finite_on_every_rank(loss: float, ctx) -> bool:
    """Whether ``loss`` is finite on this rank and (when distributed) on every other rank too."""
    finite = math.isfinite(loss)
    if not ctx.distributed:
        return finite
    import torch.distributed as dist

    flag = torch.tensor([0.0 if finite else 1.0], device=ctx.device)
    dist.all_reduce(flag)
    return flag.item() == 0.0


class TrainingDivergedError(NASError, FloatingPointError):
    """The training loss became NaN or infinite; the run stops before saving the epoch's checkpoint."""


class _Log:
    """Console (through tqdm) and JSON lines next to the checkpoint; only rank 0 writes."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.path, self.enabled = out / LOG_NAME, enabled

    @staticmethod
    def record(event: str, **fields) -> dict:
        return {"event": event, "time": round(time.time(), 3), **fields}

    def event(self, event: str, console: str | None = None, **fields) -> None:
        self.write(self.record(event, **fields), console)

    def write(self, record: dict, console: str | None = None) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")
        if console:
            tqdm.write(console, file=sys.stderr)  # stdout stays free for results


@dataclass(frozen=True)
class _Start:
    """What :func:`_prepare_out` found in ``out``: how the run begins."""

    checkpoint: dict | None = None  # the checkpoint to resume from; None: start at epoch 0
    log: tuple[str, ...] = ()  # resume: the log lines to keep (each with its newline)
    stages: frozenset[str] = frozenset()  # resume: the stages the kept log already announces


def _prepare_out(out: Path, config: TrainConfig, resume: bool) -> _Start:
    """Check the output directory against the module docstring's rules (reading only); ``ConfigError`` if
    it is refused. Every rank calls it before rank 0 writes anything."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file, not a folder; choose a new or empty folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not [name for name in entries if not _TEMP_FILE.fullmatch(name)]:  # stray temporaries alone: empty
        if resume:
            raise ConfigError(f"--resume: {str(out)!r} holds no previous run ({'empty' if out.exists() else 'missing'}"
                              "); start without --resume, or pass the folder of the run to continue")
        return _Start()
    has_checkpoint = CHECKPOINT_NAME in entries
    if has_checkpoint and not resume:
        raise ConfigError(f"{out} already holds a checkpoint; pass --resume to continue it or choose another --out")
    foreign = [name for name in entries if name not in _OURS and not _TEMP_FILE.fullmatch(name)]
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        if resume:
            raise ConfigError(f"--resume: {str(out)!r} holds {foreign[0]!r}{more}, which nas train does not write; "
                              "--resume takes a folder written by nas train only")
        raise ConfigError(f"--out {str(out)!r} exists and is not empty (it holds {foreign[0]!r}{more}); choose a new "
                          "or empty folder")
    if not has_checkpoint:  # the leftovers of a run stopped before its first checkpoint
        saved = _saved_config(out)
        if saved is None or TrainConfig.comparable(saved) != TrainConfig.comparable(config.to_dict()):
            if resume and saved is not None:
                diff = config.differences(saved)
                raise ConfigError(f"--resume: settings differ from the run in {out} ({', '.join(diff) or 'unknown'}); "
                                  "use the same settings or a new --out")
            where = "--resume: " if resume else "--out "
            raise ConfigError(f"{where}{str(out)!r} holds no checkpoint and no {CONFIG_NAME} of these settings "
                              "(not a nas train run of them); choose a new or empty folder")
        return _Start()  # nothing to resume from: start over (rank 0 clears the leftovers)
    state = load_checkpoint(out)
    meta = state["meta"]
    if meta["config_hash"] != config.hash:
        diff = config.differences(meta.get("config", {}))
        raise ConfigError(f"--resume: settings differ from the checkpoint's ({', '.join(diff) or 'unknown'}); "
                          "use the same settings or a new --out")
    log = _log_to_keep(out / LOG_NAME, meta)
    stages = frozenset(e["stage"] for e in map(json.loads, log) if e["event"] == "stage" and "stage" in e)
    return _Start(checkpoint=state, log=tuple(log), stages=stages)


def _saved_config(out: Path) -> dict | None:
    """``out``'s config.json as a dict, or None when it is missing or not a JSON object."""
    try:
        saved = json.loads((out / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def _log_to_keep(path: Path, meta: dict) -> list[str]:
    """The lines of the log at ``path`` written up to the checkpoint ``meta`` (its epoch's ``epoch`` event
    included, restored from ``meta`` if the kill fell between the two writes); ``ConfigError`` if a line
    is not one of ours (a torn last line is dropped). See the module docstring."""
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--resume: cannot read {path} ({type(err).__name__}); it is not a nas train log") from None
    lines = text.splitlines(keepends=True)
    events = []
    for number, line in enumerate(lines, 1):
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            if number == len(lines) and not line.endswith("\n"):
                lines.pop()  # torn by the kill mid-write
                break
            raise ConfigError(f"--resume: {path} line {number} is not a nas train log event; --resume takes a "
                              "folder written by nas train only")
        events.append(event)
    epoch = meta["epoch"]
    is_epoch = [e["event"] == "epoch" and isinstance(e.get("epoch"), int) for e in events]
    ends = [i + 1 for i, e in enumerate(events) if is_epoch[i] and e["epoch"] == epoch]
    if ends:
        return lines[:ends[-1]]
    later = [i for i, e in enumerate(events) if (is_epoch[i] and e["epoch"] > epoch) or e["event"] == "done"]
    kept = lines[:later[0]] if later else lines
    restored = meta.get("epoch_event")
    if isinstance(restored, dict) and restored.get("event") == "epoch":
        kept.append(json.dumps(restored) + "\n")
    return kept


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
    start = _prepare_out(out, config, resume)
    # Bad data or settings fail here, before anything is written to ``out``.
    data = load_data(config.data, seed=config.seed, val_fraction=config.val_fraction, image_size=config.image_size)
    steps = _steps_per_epoch(config, data, ctx)
    ctx.barrier()  # every rank has checked the directory before rank 0 writes to it
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    supernet = build_supernet(config, data).to(ctx.device)
    optimizer = build_optimizer(supernet, config)
    strategy = build_strategy(config)
    plan = strategy.plan(steps * config.epochs, supernet.space)
    log = _Log(out, ctx.is_main)
    start_epoch, global_step = _begin(out, config, start, supernet, optimizer, log, data=data, steps=steps, ctx=ctx)
    ctx.barrier()
    on_stage_start = _stage_hook(strategy, supernet, out, log, ctx, logged=start.stages)
    bar = tqdm(total=steps * config.epochs, initial=global_step, unit="step", desc="train",
               disable=not (progress and ctx.is_main), dynamic_ncols=True)

    def on_step(info: StepInfo) -> None:
        # stop before this epoch's checkpoint: no NaN weights are saved as done; every rank stops at the same
        # step (a rank left behind would wait in the next all-reduce until the process group times out)
        if not _finite_on_every_rank(info.loss, ctx):
            became = info.loss if not math.isfinite(info.loss) else "non-finite on another rank"
            raise TrainingDivergedError(
                f"training diverged: the loss became {became} at step {info.global_step} (epoch "
                f"{(info.global_step - 1) // steps + 1}, stage {info.stage.name}); nothing of this epoch was saved; "
                f"lower the learning rate (lr={config.lr:g}) or check the data")
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
                device=ctx.device, distributed=ctx.distributed, warmup_steps=config.warmup_epochs * steps,
                on_stage_start=on_stage_start, on_step=on_step)
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


def _begin(out: Path, config: TrainConfig, start: _Start, supernet: Supernet, optimizer: torch.optim.Optimizer,
           log: _Log, *, data: DataSource, steps: int, ctx: DistContext) -> tuple[int, int]:
    """Load the checkpoint (resume; the log is cut back to it) or start a fresh ``out`` (clearing the
    leftovers of a run stopped before its first checkpoint); returns (first epoch, global step)."""
    if ctx.is_main:
        for name in _OURS:
            remove_stale_temp_files(out, name)  # of writers killed mid-write
    state = start.checkpoint
    if state is not None:
        supernet.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, global_step = state["meta"]["epoch"] + 1, state["meta"]["global_step"]
        if ctx.is_main:
            atomic_write_bytes(out / LOG_NAME, "".join(start.log).encode("utf-8"))
        log.event("resume", f"resuming {out} after epoch {start_epoch}", epoch=start_epoch - 1,
                  global_step=global_step, checkpoint_sha256=state["sha256"])
        return start_epoch, global_step
    if ctx.is_main:
        for leftover in (out / TEACHER_NAME, out / LOG_NAME):
            leftover.unlink(missing_ok=True)
        atomic_write_bytes(out / CONFIG_NAME, json.dumps(config.to_dict(), indent=2, allow_nan=False).encode())
        log.event("start", f"training {config.space} on {data.name} with {config.strategy}: {config.epochs} epochs "
                  f"x {steps} steps, {ctx.world_size} process(es) on {ctx.device}",
                  config=config.to_dict(), world_size=ctx.world_size, device=str(ctx.device))
    return 0, 0


def _stage_hook(strategy: TrainingStrategy, supernet: Supernet, out: Path, log: _Log, ctx: DistContext, *,
                logged: frozenset[str] = frozenset()):
    """``on_stage_start`` for ``train_steps``: snapshots the progressive-shrinking teacher when the
    full stage ends, and logs each stage once per run (``logged``: those a resumed log already has)."""
    logged_stages: set[str] = set(logged)

    def on_stage_start(stage: Stage) -> None:
        if isinstance(strategy, ProgressiveShrinking) and stage.name != "full" and strategy.teacher is None:
            strategy.set_teacher(_teacher(supernet, out, ctx))
        if stage.name not in logged_stages:  # also runs at every epoch start; log each stage once
            logged_stages.add(stage.name)
            log.event("stage", f"stage {stage.name}: steps {stage.start}-{stage.end}", stage=stage.name,
                      start=stage.start, end=stage.end)

    return on_stage_start


def _end_epoch(out: Path, config: TrainConfig, supernet: Supernet, optimizer: torch.optim.Optimizer, log: _Log, *,
               epoch: int, stage: str, global_step: int, loss: float, val: dict[str, EvalResult], started: float,
               world_size: int) -> None:
    """Rank 0 after an epoch: the checkpoint (atomic), which carries the epoch's log line, then that line."""
    record = log.record("epoch", epoch=epoch, stage=stage, global_step=global_step, train_loss=loss,
                        seconds=round(time.time() - started, 2),
                        val={k: {"top1": v.top1, "loss": v.loss, "n": v.n} for k, v in val.items()})
    meta = {"space": supernet.space.name, "space_version": supernet.space.version,
            "config_hash": config.hash, "config": config.to_dict(), "strategy": config.strategy,
            "stage": stage, "epoch": epoch, "global_step": global_step,
            "rng": capture_rng_state(), "world_size": world_size,
            "val": {k: v.top1 for k, v in val.items()}, "epoch_event": record}
    save_checkpoint(out, model_state=supernet.state_dict(), optimizer_state=optimizer.state_dict(), meta=meta)
    summary = " ".join(f"{k} {v.top1:.2%}" for k, v in val.items())
    log.write(record, f"epoch {epoch + 1}/{config.epochs} [{stage}] loss {loss:.3f} | val top1 "
                      f"{summary} | {time.time() - started:.0f} s")


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

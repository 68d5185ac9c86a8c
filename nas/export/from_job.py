"""What ``nas export`` does before exporting: find the arch (a job's trial or ``--arch``) and the
weights (a ``nas train`` folder, BN recalibrated for the arch, or a fresh supernet), then call
:func:`nas.export.subnet.export_with_options`; and the summary table it prints."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

from nas.export.subnet import (RANDOM_INIT_SEED, ExportError, ExportOptions, ExportResult, _export_profile,
                               check_out_dir, export_with_options)
from search_spaces import get_space


def resolve_and_export(*, out: Path, formats: Sequence[str], job: str | None = None, trial: int | None = None,
                       storage: str = "sqlite:///nas.db", arch_obj: dict | None = None, space: str | None = None,
                       checkpoint: Path | None = None, device: str = "host-cpu", dynamic_batch: bool = False,
                       latency_model: Path | None = None, repeats: int = 20, tune_minutes: float = 0.0,
                       tuning_db: Path | None = None, rpc_tracker: str | None = None,
                       log: Callable[[str], None] | None = None) -> ExportResult:
    """``nas export``: find the arch (a job's trial or ``arch_obj``) and the weights (a ``nas train``
    folder, else a freshly initialised supernet), recalibrate BN for the arch, export. Every setting
    is checked before anything is loaded."""
    options = ExportOptions(formats=formats, device=device, dynamic_batch=dynamic_batch, latency_model=latency_model,
                            tune_minutes=tune_minutes, tuning_db=tuning_db, rpc_tracker=rpc_tracker,
                            warmup=min(3, repeats), repeats=repeats)
    out = check_out_dir(out)
    _export_profile(device)
    if (job is None) == (arch_obj is None):
        raise ExportError("give either --job NAME --trial N or --arch JSON")
    if job is not None and trial is None:
        raise ExportError("--job needs --trial N (see `nas pareto JOB`)")
    arch_dict, space_name = _job_arch(job, trial, storage, space) if job is not None else (arch_obj, space)
    evaluator = _checkpoint_evaluator(checkpoint, space_name)
    if evaluator is not None:
        supernet = evaluator.supernet.cpu()
    else:
        if space_name is None:
            raise ExportError("--space is required with --arch and no --checkpoint")
        get_space(space_name)  # an unknown space lists the valid ones
        from supernets import create_supernet

        supernet = create_supernet(space_name)
    arch = supernet.space.parse(arch_dict)
    bn = _fit_bn(supernet, arch, evaluator)
    supernet.eval()
    options = dataclasses.replace(
        options, weights="checkpoint" if evaluator is not None else "random-init", bn_statistics=bn,
        checkpoint_sha256=evaluator.checkpoint_hash if evaluator is not None else None)
    return export_with_options(supernet, arch, out, options, log=log)


def _job_arch(job: str, trial: int, storage: str, space_name: str | None) -> tuple[dict, str]:
    """``(arch dict, space name)`` of a search job's trial; ``--space`` must agree with the job's."""
    from nas.jobs.results import load_job

    result = load_job(job, storage=storage)
    try:
        arch = result.arch(trial)
    except KeyError:
        raise ExportError(f"job {job!r} has no trial {trial}") from None
    job_space = result.space.name
    if space_name is not None and space_name != job_space:
        raise ExportError(f"--space {space_name} differs from job {job!r}'s space {job_space}")
    return arch.to_dict(), job_space


def _checkpoint_evaluator(checkpoint: Path | None, space_name: str | None):
    """The ``CheckpointEvaluator`` of a ``nas train`` folder (its space must be the arch's), or None."""
    if checkpoint is None:
        return None
    from nas.training.evaluation import CheckpointEvaluator

    evaluator = CheckpointEvaluator(Path(checkpoint))
    if space_name is not None and space_name != evaluator.space.name:
        raise ExportError(f"the checkpoint's space is {evaluator.space.name}, but the arch is of {space_name}")
    return evaluator


def _fit_bn(supernet, arch, evaluator) -> str:
    """Recalibrate BN for ``arch``, on the checkpoint's data or on seeded random inputs; says which."""
    from supernets.bn import recalibrate_bn

    if evaluator is None:
        # an untrained net's activations decay towards zero (outputs ~1e-5, denormal, slow, and a
        # parity check on them proves nothing): fit BN statistics to seeded random inputs instead
        import torch

        gen = torch.Generator().manual_seed(RANDOM_INIT_SEED)
        recalibrate_bn(supernet, arch, [torch.randn(supernet.input_shape(arch, 8), generator=gen)], 1)
        return "recalibrated on 8 seeded random inputs (no checkpoint)"
    from supernets.training.losses import resize_batch

    config = evaluator.config
    resolution = supernet.space.input_shape(arch)[-1]
    batches = (resize_batch(b[0] if isinstance(b, (tuple, list)) else b, resolution)
               for b in evaluator.source.calib_batches(batch_size=config.batch_size, seed=config.seed))
    used = recalibrate_bn(supernet, arch, batches, config.calib_batches)
    return f"recalibrated on {used} batches of the checkpoint's data ({evaluator.data})"


def render_summary(result: ExportResult, out: Path) -> str:
    """A short table: format, file, parity, latency; then what was not verified and why."""
    lines = [f"exported {result.space} subnet {result.arch_id} ({result.weights} weights) to {out}",
             f"{'format':<8}{'file':<22}{'max abs diff':>14}{'|output|':>10}{'latency ms':>16}"]
    notes = []
    for fmt, entry in result.formats.items():
        lat = entry.get("latency_ms") or {}
        latency = f"{lat['value']:.3g} ± {lat['spread']:.2g}" if lat else "-"
        parity = entry.get("parity")
        diff, mag = (f"{parity['max_abs_diff']:.3g}", f"{parity['output_max_abs']:.3g}") if parity else ("unverified", "-")
        lines.append(f"{fmt:<8}{entry['file']:<22}{diff:>14}{mag:>10}{latency:>16}")
        if entry.get("reason"):
            notes.append(f"{fmt}: {entry['reason']}")
    lines += notes
    for name, metric in (result.estimated or {}).items():
        lines.append(f"estimated {name} on {metric['profile']}: {metric['value']:.4g} {metric['unit']} [{metric['source']}]")
    if result.predicted_latency_ms is not None:
        p = result.predicted_latency_ms
        lines.append(f"predicted latency ({p['backend']}, {p['profile']}): {p['value']:.3g} ms")
    lines.append(f"latency measured on {result.device} with {result.threads} threads (median ± IQR); "
                 f"export took {result.steps_s['total_s']:.1f} s")
    return "\n".join(lines)

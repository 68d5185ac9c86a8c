"""What ``nas export`` does before exporting: find the arch (a job's trial or ``--arch``) and the
weights (a ``nas train`` folder, BN recalibrated for the arch, or a fresh supernet), then call
:func:`nas.export.subnet.export_subnet`; and the summary table it prints."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from nas.export.subnet import RANDOM_INIT_SEED, ExportError, _export_profile, check_out_dir, export_subnet, parse_formats
from search_spaces import get_space


def resolve_and_export(*, out: Path, formats: Sequence[str], job: str | None = None, trial: int | None = None,
                       storage: str = "sqlite:///nas.db", arch_obj: dict | None = None, space: str | None = None,
                       checkpoint: Path | None = None, device: str = "host-cpu", dynamic_batch: bool = False,
                       latency_model: Path | None = None, repeats: int = 20, tune_minutes: float = 0.0,
                       tuning_db: Path | None = None, rpc_tracker: str | None = None,
                       log: Callable[[str], None] | None = None) -> dict:
    """``nas export``: find the arch (a job's trial or ``arch_obj``) and the weights (a ``nas train``
    folder, else a freshly initialised supernet), recalibrate BN for the arch, export."""
    formats = parse_formats(formats)
    if isinstance(tune_minutes, bool) or not isinstance(tune_minutes, (int, float)) or not 0 <= tune_minutes < float("inf"):
        raise ExportError(f"--tune-minutes must be a number >= 0, got {tune_minutes!r}")
    out = check_out_dir(out)
    _export_profile(device)
    if (job is None) == (arch_obj is None):
        raise ExportError("give either --job NAME --trial N or --arch JSON")
    if job is not None and trial is None:
        raise ExportError("--job needs --trial N (see `nas pareto JOB`)")
    arch_dict, space_name = None, space
    if job is not None:
        from nas.jobs.results import load_job

        result = load_job(job, storage=storage)
        try:
            arch = result.arch(trial)
        except KeyError:
            raise ExportError(f"job {job!r} has no trial {trial}") from None
        job_space = result.space.name
        if space_name is not None and space_name != job_space:
            raise ExportError(f"--space {space_name} differs from job {job!r}'s space {job_space}")
        arch_dict, space_name = arch.to_dict(), job_space
    else:
        arch_dict = arch_obj
    evaluator = None
    if checkpoint is not None:
        from nas.training.evaluation import CheckpointEvaluator

        evaluator = CheckpointEvaluator(Path(checkpoint))
        if space_name is not None and space_name != evaluator.space.name:
            raise ExportError(f"the checkpoint's space is {evaluator.space.name}, but the arch is of {space_name}")
        supernet = evaluator.supernet.cpu()
    else:
        if space_name is None:
            raise ExportError("--space is required with --arch and no --checkpoint")
        get_space(space_name)  # an unknown space lists the valid ones
        from supernets import create_supernet

        supernet = create_supernet(space_name)
    arch = supernet.space.parse(arch_dict)
    if evaluator is None:
        # an untrained net's activations decay towards zero (outputs ~1e-5, denormal, slow, and a
        # parity check on them proves nothing): fit BN statistics to seeded random inputs instead
        import torch

        from supernets.bn import recalibrate_bn

        gen = torch.Generator().manual_seed(RANDOM_INIT_SEED)
        recalibrate_bn(supernet, arch, [torch.randn(supernet.input_shape(arch, 8), generator=gen)], 1)
        bn = "recalibrated on 8 seeded random inputs (no checkpoint)"
    else:
        from supernets.bn import recalibrate_bn
        from supernets.training.losses import resize_batch

        config = evaluator.config
        resolution = supernet.space.input_shape(arch)[-1]
        batches = (resize_batch(b[0] if isinstance(b, (tuple, list)) else b, resolution)
                   for b in evaluator.source.calib_batches(batch_size=config.batch_size, seed=config.seed))
        used = recalibrate_bn(supernet, arch, batches, config.calib_batches)
        bn = f"recalibrated on {used} batches of the checkpoint's data ({evaluator.data})"
    supernet.eval()
    return export_subnet(supernet, arch, out, formats=formats, device=device, dynamic_batch=dynamic_batch,
                         weights="checkpoint" if evaluator is not None else "random-init",
                         checkpoint_sha256=evaluator.checkpoint_hash if evaluator is not None else None,
                         latency_model=latency_model, bn_statistics=bn, warmup=min(3, repeats), repeats=repeats,
                         tune_minutes=tune_minutes, tuning_db=tuning_db, rpc_tracker=rpc_tracker, log=log)


def render_summary(report: dict, out: Path) -> str:
    """A short table: format, file, parity, latency; then what was not verified and why."""
    lines = [f"exported {report['space']} subnet {report['arch_id']} ({report['weights']} weights) to {out}",
             f"{'format':<8}{'file':<22}{'max abs diff':>14}{'|output|':>10}{'latency ms':>16}"]
    notes = []
    for fmt, entry in report["formats"].items():
        lat = entry.get("latency_ms") or {}
        latency = f"{lat['value']:.3g} ± {lat['spread']:.2g}" if lat else "-"
        parity = entry.get("parity")
        diff, mag = (f"{parity['max_abs_diff']:.3g}", f"{parity['output_max_abs']:.3g}") if parity else ("unverified", "-")
        lines.append(f"{fmt:<8}{entry['file']:<22}{diff:>14}{mag:>10}{latency:>16}")
        if entry.get("reason"):
            notes.append(f"{fmt}: {entry['reason']}")
    lines += notes
    for name, metric in report.get("estimated", {}).items():
        lines.append(f"estimated {name} on {metric['profile']}: {metric['value']:.4g} {metric['unit']} [{metric['source']}]")
    if "predicted_latency_ms" in report:
        p = report["predicted_latency_ms"]
        lines.append(f"predicted latency ({p['backend']}, {p['profile']}): {p['value']:.3g} ms")
    lines.append(f"latency measured on {report['device']} with {report['threads']} threads (median ± IQR); "
                 f"export took {report['steps_s']['total_s']:.1f} s")
    return "\n".join(lines)

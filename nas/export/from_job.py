"""What ``nas export`` does before exporting: find the arch (a job's trial or ``--arch``) and the
weights (a ``nas train`` folder, BN recalibrated for the arch, or a fresh supernet), then call
:func:`nas.export.subnet.export_with_options`; and the summary table it prints.

A co-design arch (``<space>+hw(<device>)``: a trial of such a job, or ``--space``/``--arch``) exports its network
part as below and ``accelerator.toml`` beside it (:mod:`nas.export._accelerator`).
The arch may be of a quantized space (``<space>+q``: a trial of a ``+q`` job, or ``--space``/``--arch``
with ``q_<block>`` settings): the supernet is the base space's and the network part is exported.
Without ``--checkpoint`` a job's own checkpoint (its config's ``[accuracy] checkpoint``) gives the
weights. ``--quantize`` (:mod:`nas.export._int8`) calibrates on the checkpoint's training split and
reports top-1 on its validation split; the calibration settings default to the job's ``[quantization]``
ones, else minmax on 256 samples."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

from nas.export._accelerator import accelerator_target, export_with_accelerator, summary_line
from nas.export._int8 import policy_needed_error, quantized_space_of, summary_lines
from nas.export.subnet import (RANDOM_INIT_SEED, ExportError, ExportOptions, ExportResult, _export_profile,
                               check_out_dir, export_with_options)
from nas.jobs.records import metric_from_dict
from nas.report.tables import figure_text
from search_spaces import get_space
from search_spaces.quantization import split_quantized_name


def resolve_and_export(*, out: Path, formats: Sequence[str], job: str | None = None, trial: int | None = None,
                       storage: str = "sqlite:///nas.db", arch_obj: dict | None = None, space: str | None = None,
                       checkpoint: Path | None = None, device: str = "host-cpu", dynamic_batch: bool = False,
                       latency_model: Path | None = None, repeats: int = 20, tune_minutes: float = 0.0,
                       tuning_db: Path | None = None, rpc_tracker: str | None = None, quantize: str | None = None,
                       calibration_method: str | None = None, calibration_samples: int | None = None,
                       log: Callable[[str], None] | None = None) -> ExportResult:
    """``nas export``: find the arch (a job's trial or ``arch_obj``) and the weights (a ``nas train``
    folder, else a freshly initialised supernet), recalibrate BN for the arch's network, export (and with
    ``quantize``, "policy" or "int8", quantize: module docstring). Every setting is checked before anything
    is loaded."""
    quant = _QuantFlags(quantize, calibration_method, calibration_samples)
    options = ExportOptions(formats=formats, device=device, dynamic_batch=dynamic_batch, latency_model=latency_model,
                            tune_minutes=tune_minutes, tuning_db=tuning_db, rpc_tracker=rpc_tracker,
                            warmup=min(3, repeats), repeats=repeats, **quant.settings(None))
    out = check_out_dir(out)
    _export_profile(device)
    if (job is None) == (arch_obj is None):
        raise ExportError("give either --job NAME --trial N or --arch JSON")
    if job is not None and trial is None:
        raise ExportError("--job needs --trial N (see `nas pareto JOB`)")
    found = _job_arch(job, trial, storage, space) if job is not None else _Found(arch_obj, space)
    accelerator = accelerator_target(found.space, found.arch, job=job, trial=trial)
    if accelerator is not None:  # a co-design arch: its network part is exported, accelerator.toml beside it
        found = dataclasses.replace(found, arch=accelerator.network.to_dict(), space=accelerator.network_space)
    space_name = found.space
    if quantize == "policy" and not _has_policy(space_name, found.arch):
        raise policy_needed_error(space_name)
    evaluator = _checkpoint_evaluator(checkpoint or found.checkpoint, space_name)
    if checkpoint is None and evaluator is not None:
        found.check_checkpoint(evaluator.checkpoint_hash)
    supernet = _supernet(evaluator, space_name)
    if space_name is None and _has_policy(None, found.arch):  # q_ settings, --space defaulting to the checkpoint's
        space_name = f"{supernet.space.name}+q"
    arch_space = (quantized_space_of(supernet.space, space_name) if space_name else None) or supernet.space
    arch = arch_space.parse(found.arch)
    bn = _fit_bn(supernet, arch_space.network(arch) if arch_space is not supernet.space else arch, evaluator)
    supernet.eval()
    options = dataclasses.replace(
        options, weights="checkpoint" if evaluator is not None else "random-init", bn_statistics=bn,
        checkpoint_sha256=evaluator.checkpoint_hash if evaluator is not None else None, **quant.settings(found))
    if accelerator is not None:
        return export_with_accelerator(accelerator, out, lambda folder: export_with_options(
            supernet, arch, folder, options, evaluator=evaluator, log=log))
    return export_with_options(supernet, arch, out, options, evaluator=evaluator, log=log)


def _supernet(evaluator, space_name: str | None):
    """The checkpoint's supernet (on the CPU), or a fresh one of the arch's (network) space."""
    if evaluator is not None:
        return evaluator.supernet.cpu()
    if space_name is None:
        raise ExportError("--space is required with --arch and no --checkpoint")
    get_space(space_name)  # an unknown space lists the valid ones
    from supernets import create_supernet

    return create_supernet(_base_name(space_name))


@dataclasses.dataclass(frozen=True)
class _Found:
    """The arch to export (a dict), its space name (None: the checkpoint's), and for a job started from a
    config its name, checkpoint folder and SHA-256, and ``[quantization]`` settings."""

    arch: dict
    space: str | None
    checkpoint: Path | None = None
    quantization: dict | None = None
    job: str | None = None
    checkpoint_sha256: str | None = None

    def check_checkpoint(self, sha256: str) -> None:
        """``ExportError`` when the job's checkpoint folder now holds other weights than it was searched with."""
        if self.checkpoint_sha256 and sha256 != self.checkpoint_sha256:
            raise ExportError(f"job {self.job!r} was searched with checkpoint sha256 {self.checkpoint_sha256[:12]}..., "
                              f"but {str(self.checkpoint)!r} now holds {sha256[:12]}...; pass --checkpoint to export "
                              "with other weights")


@dataclasses.dataclass(frozen=True)
class _QuantFlags:
    """``--quantize``, ``--calibration-method`` and ``--calibration-samples`` as given (None: not given)."""

    quantize: str | None
    method: str | None
    samples: int | None

    def settings(self, found: _Found | None) -> dict:
        """The ``ExportOptions`` keywords: the flags, else the job's ``[quantization]``, else minmax and 256."""
        if self.quantize is None and (self.method is not None or self.samples is not None):
            raise ExportError("--calibration-method and --calibration-samples set up --quantize; add --quantize "
                              "policy or --quantize int8")
        job = (found.quantization if found is not None else None) or {}
        method = self.method if self.method is not None else job.get("method", "minmax")
        samples = self.samples if self.samples is not None else job.get("samples", 256)
        return {"quantize": self.quantize, "calibration_method": method, "calibration_samples": samples}


def _base_name(space_name: str) -> str:
    split = split_quantized_name(space_name)
    return split[0] if split else space_name


def _has_policy(space_name: str | None, arch: dict) -> bool:
    """Whether the arch carries a quantization policy (a ``+q`` space, or ``q_`` settings with the checkpoint's)."""
    if space_name is not None:
        return split_quantized_name(space_name) is not None
    return isinstance(arch, dict) and any(str(k).startswith("q_") or k == "quantization" for k in arch)


def _job_arch(job: str, trial: int, storage: str, space_name: str | None) -> _Found:
    """The arch of a search job's trial, its space (``--space`` must agree) and the job's checkpoint and
    ``[quantization]`` settings when it was started from a config."""
    from nas.jobs.results import load_job

    result = load_job(job, storage=storage)
    try:
        arch = result.arch(trial)
    except KeyError:
        raise ExportError(f"job {job!r} has no trial {trial}") from None
    job_space = result.space.name
    if space_name is not None and space_name != job_space:
        raise ExportError(f"--space {space_name} differs from job {job!r}'s space {job_space}")
    stored = result.job.job_config.search_config
    checkpoint, quantization = None, None
    if stored:
        from nas.jobs.config import SearchConfig

        config = SearchConfig.from_stored(stored)  # typed: a malformed record is one ConfigError line
        quantization = {"method": config.quantization.method, "samples": config.quantization.samples}
        if config.accuracy.checkpoint:
            checkpoint = config.path(config.accuracy.checkpoint)
            if not checkpoint.exists():
                raise ExportError(f"job {job!r} was searched with checkpoint {str(checkpoint)!r}, which is missing; "
                                  "pass --checkpoint FOLDER")
    return _Found(arch.to_dict(), job_space, checkpoint, quantization, job,
                  result.job.job_config.extra.get("checkpoint_sha256"))


def _checkpoint_evaluator(checkpoint: Path | None, space_name: str | None):
    """The ``CheckpointEvaluator`` of a ``nas train`` folder (its space must be the arch's network space), or None."""
    if checkpoint is None:
        return None
    from nas.training.evaluation import CheckpointEvaluator

    evaluator = CheckpointEvaluator(Path(checkpoint))
    if space_name is not None and _base_name(space_name) != evaluator.space.name:
        raise ExportError(f"the checkpoint's space is {evaluator.space.name}, but the arch is of {space_name}")
    return evaluator


def _fit_bn(supernet, arch, evaluator) -> str:
    """Recalibrate BN for ``arch``, on the checkpoint's data or on seeded random inputs; says which."""
    from supernets.bn import has_batchnorm, recalibrate_bn

    if not has_batchnorm(supernet):
        return "none: the network has no BatchNorm"
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
    if result.int8 is not None:
        lines += summary_lines(result.int8)
    if result.accelerator is not None:
        lines.append(summary_line(result.accelerator))
    for name, metric in (result.estimated or {}).items():
        lines.append(f"estimated {name} on {metric['profile']}: {metric['value']:.4g} {metric['unit']} [{metric['source']}]")
    if result.predicted_latency_ms is not None:
        p = result.predicted_latency_ms
        lines.append(f"predicted latency ({p['backend']}, {p['profile']}): "
                     f"{figure_text(metric_from_dict({'unit': 'ms', **p}))}")
    lines.append(f"latency measured on {result.device} with {result.threads} threads (median ± IQR); "
                 f"export took {result.steps_s['total_s']:.1f} s")
    return "\n".join(lines)

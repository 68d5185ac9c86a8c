"""``nas profile``: build a device's latency model from measurements on that device.

Steps (each with a progress bar and ETA on stderr):
1. sample ``samples`` distinct subnets of the space (seeded), split them 80/20 into fit/held-out;
2. measure every distinct layer workload once (standalone modules, ``supernets.layer_module``),
   over the sampled subnets plus ``coverage`` more random subnets, so unseen subnets can be predicted;
3. measure every sampled subnet (``supernet.extract``), then re-measure the held-out ones: the share
   of re-measurements within ±10% of the first is the ceiling any predictor can reach. Every
   measurement runs in chunks interleaved with a reference subnet and is drift-corrected
   (``nas.profiling._interleaved``);
4. fit the kernel-level and arch-level predictors and a MACs-only proxy on the fit split, and report
   RMSE, the ±10% share and Spearman on the held-out split.

Output folder (written to a temporary sibling, then renamed: no half-written folder is left):
``latency_model.json`` (predictors + report, see :mod:`nas.profiling.latency_model`), ``measurements.jsonl``
(one measured subnet per line with its split and spread) and ``report.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hw_profiles import MeasuredCostModel, Profile, get_profile, macs
from hw_profiles.tvm_measured import measured_model_for
from nas.profiling._interleaved import corrected, measure_chunks, reference_scale
from nas.profiling.latency_model import LatencyModel
from predictors.features import arch_features
from predictors.latency import ArchLevelPredictor, KernelLevelPredictor, MacsProxyPredictor
from predictors.metrics import regression_report, spearman, within_pct
from search_spaces import ArchConfig, NASError, SearchSpace

BACKENDS = ("onnxruntime", "tvm", "torch")


class ProfileJobError(NASError, ValueError):
    """A ``nas profile`` setting is unusable (wrong device kind, too few samples, output exists)."""


@dataclass(frozen=True)
class ProfileSettings:
    """What to measure and how. ``backend``/``threads`` of ``None`` keep the profile's own."""

    samples: int = 200
    holdout: float = 0.2
    coverage: int = 2000
    backend: str | None = None
    threads: int | None = None
    warmup: int = 5
    repeats: int = 20
    seed: int = 0
    chunk: int = 20  # items timed turn by turn with the reference subnet (see nas.profiling._interleaved)
    drift_correction: bool = True
    rpc_tracker: str | None = None  # HOST:PORT for a board profile (rpc_key); None: the profile's own
    TOML_TYPES = {"backend": str, "threads": int, "rpc_tracker": str}  # for nas._config_io.typed_values (None defaults)

    def __post_init__(self) -> None:
        if self.samples < 10:
            raise ProfileJobError(f"samples must be >= 10 (fit and held-out splits need several subnets), got {self.samples}")
        if not 0.05 <= self.holdout <= 0.5:
            raise ProfileJobError(f"holdout must be a fraction in [0.05, 0.5], got {self.holdout}")
        if self.coverage < 0:
            raise ProfileJobError(f"coverage must be >= 0, got {self.coverage}")
        if self.backend is not None and self.backend not in BACKENDS:
            raise ProfileJobError(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.chunk < 1:
            raise ProfileJobError(f"chunk must be >= 1, got {self.chunk}")
        if self.threads is not None and self.threads < 1:
            raise ProfileJobError(f"threads must be >= 1, got {self.threads}")


def _distinct_archs(space: SearchSpace, n: int, rng: np.random.Generator) -> list[ArchConfig]:
    archs: dict[str, ArchConfig] = {}
    for _ in range(20 * n):  # bounded: small spaces may hold fewer than n distinct subnets
        arch = space.sample(rng)
        archs.setdefault(arch.arch_id, arch)
        if len(archs) == n:
            break
    return list(archs.values())


def _cpu_model(profile: Profile, settings: ProfileSettings, space: SearchSpace) -> MeasuredCostModel:
    from supernets import create_supernet

    if profile.kind != "cpu":
        raise ProfileJobError(f"nas profile measures on this host: {profile.ref} is a {profile.kind} profile, "
                              "whose metrics are estimated; pick a cpu profile such as host-cpu")
    spec = dataclasses.replace(profile.spec, backend=settings.backend or profile.spec.backend,
                               threads=settings.threads if settings.threads is not None else profile.spec.threads)
    supernet = create_supernet(space.name, num_classes=space.num_classes, in_channels=space.in_channels, seed=0)
    return measured_model_for(dataclasses.replace(profile, spec=spec), rpc_tracker=settings.rpc_tracker,
                              build=supernet.extract, input_shape=lambda a: (1, *space.input_shape(a)),
                              warmup=settings.warmup, repeats=settings.repeats, seed=settings.seed)


def _bar(total: int, desc: str, unit: str, progress: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True, leave=True)


def _layer_build(spec):
    def build():
        from supernets.layer_module import layer_input_shape, layer_module

        return layer_module(spec), layer_input_shape(spec)
    return build


def _arch_build(model: MeasuredCostModel, arch):
    return lambda: (model.build(arch), tuple(int(n) for n in model.input_shape(arch)))


def _spread(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}


def _workloads(space: SearchSpace, archs, coverage: int, rng: np.random.Generator) -> list:
    seen: dict = {}
    extra = [space.sample(rng) for _ in range(coverage)]
    for arch in [*archs, *extra]:
        for layer in space.layers(arch):
            seen.setdefault(layer.workload)
    return list(seen)


def profile_device(space: SearchSpace, device: str, out: Path, *, settings: ProfileSettings = ProfileSettings(),
                   progress: bool = True) -> dict:
    """Run the whole job (see the module docstring); returns the report dict also written to ``out``."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ProfileJobError(f"--out {str(out)!r} exists and is not empty; choose a new folder or remove it")
    profile = get_profile(device)
    model = _cpu_model(profile, settings, space)
    rng = np.random.default_rng(settings.seed)
    archs = _distinct_archs(space, settings.samples, rng)
    if len(archs) < 10:
        raise ProfileJobError(f"space {space.name!r} yielded only {len(archs)} distinct subnets; need >= 10")
    n_test = max(2, int(round(settings.holdout * len(archs))))
    order = rng.permutation(len(archs))
    test_idx, fit_idx = sorted(order[:n_test]), sorted(order[n_test:])
    started = time.perf_counter()
    workloads = _workloads(space, archs, settings.coverage, rng)
    ref_arch = space.sample(np.random.default_rng(settings.seed + 7919))
    reference = _arch_build(model, ref_arch)
    chunked = dict(chunk=settings.chunk, progress=progress)
    layer_runs = measure_chunks(model, [_layer_build(w) for w in workloads], reference, desc="layers", unit="layer",
                                **chunked)
    arch_runs = measure_chunks(model, [_arch_build(model, a) for a in archs], reference, desc="subnets",
                               unit="subnet", **chunked)
    again_runs = measure_chunks(model, [_arch_build(model, archs[i]) for i in test_idx], reference,
                                desc="re-measure", unit="subnet", **chunked)
    scale = reference_scale(layer_runs, arch_runs, again_runs)
    fix = dict(scale_ms=scale, enabled=settings.drift_correction)
    table = {w: m.value for w, m in zip(workloads, corrected(layer_runs, **fix))}
    measured = corrected(arch_runs, **fix)
    remeasured = corrected(again_runs, **fix)
    y = np.array([m.value for m in measured])
    layers = [space.layers(a) for a in archs]
    features = arch_features(space, archs)
    macs_x = np.array([macs(rows) for rows in layers], dtype=np.float64)

    kernel = KernelLevelPredictor(layer_latency_ms=table).fit([layers[i] for i in fit_idx], y[fit_idx])
    arch_level = ArchLevelPredictor().fit(features[fit_idx], y[fit_idx])
    proxy = MacsProxyPredictor().fit(macs_x[fit_idx], y[fit_idx])
    y_test = y[test_idx]
    predictions = {"kernel_level": kernel.predict([layers[i] for i in test_idx]),
                   "arch_level": arch_level.predict(features[test_idx]),
                   "macs_proxy": proxy.predict(macs_x[test_idx])}
    again = np.array([m.value for m in remeasured])
    report = {
        "device": model.profile.ref, "backend": model.backend, "threads": model.threads, "space": space.name,
        "space_version": space.version, "samples": len(archs), "n_fit": len(fit_idx), "n_held_out": len(test_idx),
        "layer_workloads": len(table), "seed": settings.seed, "warmup": settings.warmup, "repeats": settings.repeats,
        "latency_ms": {"min": float(y.min()), "median": float(np.median(y)), "max": float(y.max())},
        "median_iqr_pct": float(np.median([m.spread / m.value * 100 for m in measured])),
        "repeatability": {"within_10pct": within_pct(y_test, again), "spearman": spearman(y_test, again)},
        "drift": {"correction": settings.drift_correction, "chunk": settings.chunk, "reference_arch_id": ref_arch.arch_id,
                  "reference_ms": _spread([s.reference_ms for run in (layer_runs, arch_runs, again_runs) for s in run])},
        "held_out": {name: regression_report(y_test, p) for name, p in predictions.items()},
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count()},
    }
    best = max(("kernel_level", "arch_level"), key=lambda k: report["held_out"][k]["within_10pct"])
    report["default_predictor"] = best
    latency_model = LatencyModel(space=space, profile_ref=model.profile.ref, backend=model.backend,
                                 threads=model.threads, kernel_level=kernel, arch_level=arch_level, default=best,
                                 report=report)
    again_by_index = dict(zip(test_idx, remeasured))
    rows = [{"arch_id": a.arch_id, "arch": a.to_dict(), "split": "held_out" if i in again_by_index else "fit",
             "latency_ms": m.value, "iqr_ms": m.spread, "source": m.source, "profile": m.profile,
             "raw_latency_ms": raw.raw.value, "reference_ms": raw.reference_ms,
             "remeasured_ms": again_by_index[i].value if i in again_by_index else None}
            for i, (a, m, raw) in enumerate(zip(archs, measured, arch_runs))]
    _write_folder(out, {"latency_model.json": json.dumps(latency_model.to_dict(), indent=1),
                        "measurements.jsonl": "".join(json.dumps(r) + "\n" for r in rows),
                        "report.json": json.dumps(report, indent=2)})
    return report


def render_report(report: dict, out: Path) -> str:
    """The report as a short table: held-out accuracy of each predictor against the ceiling."""
    lat = report["latency_ms"]
    lines = [f"{report['device']} ({report['backend']}, {report['threads']} threads), space {report['space']}: "
             f"{report['samples']} subnets measured ({report['n_fit']} fit, {report['n_held_out']} held out), "
             f"{report['layer_workloads']} layer workloads, {report['wall_s']:.0f} s",
             f"latency {lat['min']:.3g}..{lat['max']:.3g} ms (median {lat['median']:.3g}), "
             f"median IQR {report['median_iqr_pct']:.1f}% of the median",
             "", f"{'held-out':<24}{'within ±10%':>12}{'Spearman':>10}{'RMSE ms':>10}"]
    rep = report["repeatability"]
    lines.append(f"{'re-measurement (ceiling)':<24}{rep['within_10pct']:>12.1%}{rep['spearman']:>10.3f}{'':>10}")
    for name, row in report["held_out"].items():
        lines.append(f"{name:<24}{row['within_10pct']:>12.1%}{row['spearman']:>10.3f}{row['rmse']:>10.3g}")
    lines += ["", f"latency model: {out / 'latency_model.json'} (default predictor: {report['default_predictor']})"]
    return "\n".join(lines)


def _write_folder(out: Path, files: dict[str, str]) -> None:
    """Write every file into a temporary sibling folder, then rename it to ``out`` in one step."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked before measuring)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

"""``nas profile``: build a device's latency model from measurements on that device.

Steps (each with a progress bar and ETA on stderr):
1. sample ``samples`` distinct subnets of the space (seeded), split them 80/20 into fit/held-out;
2. measure every distinct layer workload once (standalone modules, ``supernets.layer_module``),
   over the sampled subnets, ``coverage`` more random subnets and the space's covering archs (every
   workload it can produce, where the space can enumerate them: MobileNetV3 and ViT families), so
   any subnet can be predicted;
3. measure every sampled subnet (``supernet.extract``), then re-measure the held-out ones: the share
   of re-measurements within ±10% of the first is the ceiling any predictor can reach. Every
   measurement runs in chunks interleaved with a reference subnet and is drift-corrected
   (``nas.profiling._interleaved``);
4. fit the kernel-level and arch-level predictors and a MACs-only proxy on the fit split, and report
   RMSE, the ±10% share and Spearman on the held-out split;
5. calibrate each predictor's prediction interval (nominal coverage ``interval``, 90% by default) from
   out-of-fold residuals of the fit split widened by the run's drift, and report its empirical
   coverage on the held-out split and on the raw re-measurements (:mod:`nas.profiling._intervals`).

Output folder (written to a temporary sibling, then renamed: no half-written folder is left; a killed
run's temporary goes at the next run on the same ``out``, :func:`nas._folders.staged_folder`):
``latency_model.json`` (predictors + report, see :mod:`nas.profiling.latency_model`), ``measurements.jsonl``
(one measured subnet per line with its split and spread) and ``report.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw_profiles import MeasuredCostModel, Profile, get_profile, macs
from hw_profiles.tvm_measured import measured_model_for
from nas._folders import check_new_folder, staged_folder
from nas.profiling._interleaved import corrected, drift_ratios, measure_chunks, reference_scale
from nas.profiling._intervals import interval_entry, log_scores, out_of_fold
from nas.profiling.builds import check_backend, layer_build, network_builder, scratch_folder
from nas.profiling._report import ProfileJobError, ProfileResult  # noqa: F401 - ProfileJobError is public here
from nas.profiling.latency_model import LatencyModel
from predictors.features import arch_features
from predictors.latency import ArchLevelPredictor, KernelLevelPredictor, MacsProxyPredictor
from predictors.metrics import regression_report, spearman, within_pct
from search_spaces import ArchConfig, SearchSpace

BACKENDS = ("onnxruntime", "tvm", "torch")


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
    interval: float = 0.9  # nominal coverage of the prediction intervals
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
        if not 0.5 <= self.interval <= 0.99:
            raise ProfileJobError(f"interval must be a coverage in [0.5, 0.99] (e.g. 0.9), got {self.interval}")


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
    network = getattr(space, "base", space)
    supernet = create_supernet(network.name, num_classes=space.num_classes, in_channels=space.in_channels, seed=0)
    check_backend(space, "tvm" if spec.rpc_key or spec.mtriple else spec.backend, f"nas profile --device {profile.name}")
    return measured_model_for(dataclasses.replace(profile, spec=spec), rpc_tracker=settings.rpc_tracker,
                              build=network_builder(supernet, space), input_shape=lambda a: (1, *space.input_shape(a)),
                              warmup=settings.warmup, repeats=settings.repeats, seed=settings.seed)


def _layer_build(spec, folder: Path):
    return lambda: layer_build(spec, folder)


def _arch_build(model: MeasuredCostModel, arch):
    return lambda: (model.build(arch), tuple(int(n) for n in model.input_shape(arch)))


def _spread(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}


def _covering(space: SearchSpace) -> list:
    """The space's covering archs (every layer workload it can produce), or none where it cannot say."""
    try:
        return space.covering_archs()
    except (AttributeError, NotImplementedError):
        return []


def _workloads(space: SearchSpace, archs, coverage: int, rng: np.random.Generator) -> list:
    seen: dict = {}
    extra = [space.sample(rng) for _ in range(coverage)]
    for arch in [*archs, *extra, *_covering(space)]:
        for layer in space.layers(arch):
            seen.setdefault(layer.workload)
    return list(seen)


@dataclass(frozen=True)
class _Plan:
    """The sampled subnets, their fit/held-out split, the layer workloads and the reference subnet."""

    archs: list
    fit_idx: list
    test_idx: list
    workloads: list
    ref_arch: ArchConfig


@dataclass(frozen=True)
class _Runs:
    """Every measurement of a run: raw chunk samples and drift-corrected metrics."""

    layer_runs: list
    arch_runs: list
    again_runs: list
    scale_ms: float  # the reference's median over the run: the speed corrected values are at
    table: dict  # workload -> corrected ms
    measured: list  # corrected Metric per sampled subnet
    remeasured: list  # corrected Metric per held-out subnet (second measurement)


def profile_device(space: SearchSpace, device: str, out: Path, *, settings: ProfileSettings = ProfileSettings(),
                   progress: bool = True) -> ProfileResult:
    """Run the whole job (see the module docstring); returns the report also written to ``out``."""
    out = check_new_folder(out, ProfileJobError)
    profile = get_profile(device)
    model = _cpu_model(profile, settings, space)
    started = time.perf_counter()
    plan = _plan(space, settings)
    runs = _measure(model, plan, settings, progress)
    y = np.array([m.value for m in runs.measured])
    layers = [space.layers(a) for a in plan.archs]
    features = arch_features(space, plan.archs)
    macs_x = np.array([macs(rows) for rows in layers], dtype=np.float64)
    fit, test = plan.fit_idx, plan.test_idx
    kernel = KernelLevelPredictor(layer_latency_ms=runs.table).fit([layers[i] for i in fit], y[fit])
    arch_level = ArchLevelPredictor().fit(features[fit], y[fit])
    proxy = MacsProxyPredictor().fit(macs_x[fit], y[fit])
    predictions = {"kernel_level": kernel.predict([layers[i] for i in test]),
                   "arch_level": arch_level.predict(features[test]),
                   "macs_proxy": proxy.predict(macs_x[test])}
    intervals = _intervals(plan, runs, settings, predictions,
                           {"kernel_level": _fitter(lambda: KernelLevelPredictor(layer_latency_ms=runs.table), layers),
                            "arch_level": _fitter(ArchLevelPredictor, features)})
    result = _result(model, space, settings, plan, runs, predictions, intervals,
                     wall_s=time.perf_counter() - started)
    latency_model = LatencyModel(space=space, profile_ref=model.profile.ref, backend=model.backend,
                                 threads=model.threads, kernel_level=kernel, arch_level=arch_level,
                                 default=result.default_predictor, report=result)
    with staged_folder(out) as folder:
        for name, text in {"latency_model.json": json.dumps(latency_model.to_dict(), indent=1),
                           "measurements.jsonl": "".join(json.dumps(r) + "\n" for r in _rows(plan, runs)),
                           "report.json": json.dumps(result.to_json(), indent=2)}.items():
            (folder / name).write_text(text, encoding="utf-8")
    return result


def _plan(space: SearchSpace, settings: ProfileSettings) -> _Plan:
    """Steps 1-2 of the module docstring: distinct seeded subnets split 80/20, and the workloads to measure."""
    rng = np.random.default_rng(settings.seed)
    archs = _distinct_archs(space, settings.samples, rng)
    if len(archs) < 10:
        raise ProfileJobError(f"space {space.name!r} yielded only {len(archs)} distinct subnets; need >= 10")
    n_test = max(2, int(round(settings.holdout * len(archs))))
    order = rng.permutation(len(archs))
    return _Plan(archs=archs, fit_idx=sorted(order[n_test:]), test_idx=sorted(order[:n_test]),
                 workloads=_workloads(space, archs, settings.coverage, rng),
                 ref_arch=space.sample(np.random.default_rng(settings.seed + 7919)))


def _measure(model: MeasuredCostModel, plan: _Plan, settings: ProfileSettings, progress: bool) -> _Runs:
    """Step 3: layers, subnets and the held-out re-measurements, interleaved with the reference, corrected."""
    reference = _arch_build(model, plan.ref_arch)
    chunked = dict(chunk=settings.chunk, progress=progress)
    folder = scratch_folder(plan)
    layer_runs = measure_chunks(model, [_layer_build(w, folder) for w in plan.workloads], reference, desc="layers",
                                unit="layer", **chunked)
    arch_runs = measure_chunks(model, [_arch_build(model, a) for a in plan.archs], reference, desc="subnets",
                               unit="subnet", **chunked)
    again_runs = measure_chunks(model, [_arch_build(model, plan.archs[i]) for i in plan.test_idx], reference,
                                desc="re-measure", unit="subnet", **chunked)
    fix = dict(scale_ms=reference_scale(layer_runs, arch_runs, again_runs), enabled=settings.drift_correction)
    return _Runs(layer_runs=layer_runs, arch_runs=arch_runs, again_runs=again_runs, scale_ms=fix["scale_ms"],
                 table={w: m.value for w, m in zip(plan.workloads, corrected(layer_runs, **fix))},
                 measured=corrected(arch_runs, **fix), remeasured=corrected(again_runs, **fix))


def _fitter(make, X):
    """``(rows, y) -> predict(rows)`` for a predictor class over the feature rows (or layer tables) ``X``."""
    def pick(rows):
        return X[rows] if isinstance(X, np.ndarray) else [X[i] for i in rows]

    def fit(rows, y):
        predictor = make().fit(pick(rows), y)
        return lambda test: predictor.predict(pick(test))
    return fit


def _intervals(plan: _Plan, runs: _Runs, settings: ProfileSettings, predictions: dict, fitters: dict) -> dict:
    """Step 5: each predictor's interval entry (``None`` with too few fit subnets)."""
    y = np.array([m.value for m in runs.measured])
    fit = np.asarray(plan.fit_idx)
    # the reference beside subnets (the context a subnet is re-measured in); the re-measurements check
    # the interval, so they stay out of it
    drift = drift_ratios(runs.arch_runs, runs.scale_ms) if settings.drift_correction else []
    raw_again = [s.raw.value for s in runs.again_runs]
    out = {}
    for name, fitter in fitters.items():
        def fold(rows, fitter=fitter):  # rows, test: positions in the fit split
            predict = fitter(fit[rows], y[fit[rows]])
            return lambda test: predict(fit[test])

        cv = out_of_fold(fold, len(fit), settings.seed)
        out[name] = interval_entry(coverage=settings.interval, cv_scores=log_scores(y[fit], cv), drift=np.asarray(drift),
                                   test_measured=y[plan.test_idx], test_predicted=predictions[name],
                                   test_remeasured_raw=raw_again)
    return out


def _result(model: MeasuredCostModel, space: SearchSpace, settings: ProfileSettings, plan: _Plan, runs: _Runs,
            predictions: dict, intervals: dict, *, wall_s: float) -> ProfileResult:
    """Step 4's report: held-out accuracy of each predictor beside the re-measurement ceiling."""
    y = np.array([m.value for m in runs.measured])
    y_test = y[plan.test_idx]
    again = np.array([m.value for m in runs.remeasured])
    held_out = {name: regression_report(y_test, p) for name, p in predictions.items()}
    reference_ms = [s.reference_ms for run in (runs.layer_runs, runs.arch_runs, runs.again_runs) for s in run]
    return ProfileResult(
        device=model.profile.ref, backend=model.backend, threads=model.threads, space=space.name,
        space_version=space.version, samples=len(plan.archs), n_fit=len(plan.fit_idx), n_held_out=len(plan.test_idx),
        layer_workloads=len(runs.table), seed=settings.seed, warmup=settings.warmup, repeats=settings.repeats,
        latency_ms={"min": float(y.min()), "median": float(np.median(y)), "max": float(y.max())},
        median_iqr_pct=float(np.median([m.spread / m.value * 100 for m in runs.measured])),
        repeatability={"within_10pct": within_pct(y_test, again), "spearman": spearman(y_test, again)},
        drift={"correction": settings.drift_correction, "chunk": settings.chunk,
               "reference_arch_id": plan.ref_arch.arch_id, "reference_arch": plan.ref_arch.to_dict(),
               "reference_ms": _spread(reference_ms)},
        held_out=held_out, intervals=intervals, wall_s=round(wall_s, 1),
        machine={"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                 "cpu_count": os.cpu_count()},
        default_predictor=max(("kernel_level", "arch_level"), key=lambda k: held_out[k]["within_10pct"]))


def _rows(plan: _Plan, runs: _Runs) -> list[dict]:
    """``measurements.jsonl``: one measured subnet per line with its split, spread and raw values."""
    again_by_index = dict(zip(plan.test_idx, runs.remeasured))
    return [{"arch_id": a.arch_id, "arch": a.to_dict(), "split": "held_out" if i in again_by_index else "fit",
             "latency_ms": m.value, "iqr_ms": m.spread, "source": m.source, "profile": m.profile,
             "raw_latency_ms": raw.raw.value, "reference_ms": raw.reference_ms, "ratio": raw.ratio,
             "remeasured_ms": again_by_index[i].value if i in again_by_index else None}
            for i, (a, m, raw) in enumerate(zip(plan.archs, runs.measured, runs.arch_runs))]


def render_report(result: ProfileResult, out: Path) -> str:
    """The report as a short table: held-out accuracy of each predictor against the ceiling."""
    lat = result.latency_ms
    lines = [f"{result.device} ({result.backend}, {result.threads} threads), space {result.space}: "
             f"{result.samples} subnets measured ({result.n_fit} fit, {result.n_held_out} held out), "
             f"{result.layer_workloads} layer workloads, {result.wall_s:.0f} s",
             f"latency {lat['min']:.3g}..{lat['max']:.3g} ms (median {lat['median']:.3g}), "
             f"median IQR {result.median_iqr_pct:.1f}% of the median",
             "", f"{'held-out':<24}{'within ±10%':>12}{'Spearman':>10}{'RMSE ms':>10}"]
    rep = result.repeatability
    lines.append(f"{'re-measurement (ceiling)':<24}{rep['within_10pct']:>12.1%}{rep['spearman']:>10.3f}{'':>10}")
    for name, row in result.held_out.items():
        lines.append(f"{name:<24}{row['within_10pct']:>12.1%}{row['spearman']:>10.3f}{row['rmse']:>10.3g}")
    lines += _interval_lines(result)
    lines += ["", f"latency model: {out / 'latency_model.json'} (default predictor: {result.default_predictor})"]
    return "\n".join(lines)


def _interval_lines(result: ProfileResult) -> list[str]:
    """The calibrated intervals and their empirical coverage, one line per predictor."""
    entries = result.intervals or {}
    if not entries:
        return []
    nominal = next((e["coverage"] for e in entries.values() if e), None)
    lines = ["", f"{'interval (nominal ' + format(nominal or 0, '.0%') + ')':<24}{'±width':>12}{'held-out':>10}"
                 f"{'re-meas.':>10}   (model ± drift)"]
    def half(q):
        return f"{(np.exp(q) - 1) * 100:.0f}%"

    for name, e in entries.items():
        if e is None:
            lines.append(f"{name:<24}{'none: too few fit subnets for the coverage':>34}")
            continue
        lines.append(f"{name:<24}{half(e['log_q']):>12}{e['held_out_coverage']:>10.0%}{e['remeasured_coverage']:>10.0%}"
                     f"   ({half(e['model_log_q'])} ± {half(e['drift_log_q'])})")
    return lines

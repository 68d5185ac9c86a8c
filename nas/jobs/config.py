"""``SearchConfig``: a search job as TOML (``nas search CONFIG.toml``), and what it builds.

Layout::

    [search]                      # space, algorithm, budget, seed, job, storage, batch_size
    space = "tiny_mbv3"
    algorithm = "auto"            # default: linas if an objective is expensive (accuracy), else nsga2
    [accuracy]                    # needed by the metric "accuracy": a `nas train` output
    checkpoint = "runs/tiny"
    [latency_models]              # cpu profile -> `nas profile` folder (predicted latency)
    host-cpu = "runs/host-cpu"
    [[objectives]]                # name, metric, direction
    name = "acc"
    metric = "accuracy"
    direction = "maximize"
    [[constraints]]               # metric, op, bound
    metric = "stm32f746.peak_sram_kb"
    op = "<="
    bound = 320
    [quantization]                # only for a space with a policy ("tiny_mbv3+q")
    method = "minmax"             # calibration: minmax | entropy | percentile
    samples = 256                 # calibration images from the training split (seeded)
    sequential_baseline = true    # also search float32, then quantize its front to int8 (equal budget)
    [codesign]                    # only for a co-design space ("tiny_mbv3+hw(zcu104)")
    mode = "joint"                # joint | nested | sequential (nas.jobs.codesign)

Metrics: ``accuracy`` (top-1 on the checkpoint's validation split, BN recalibrated; measured,
expensive; for a space with a quantization policy, the top-1 of the post-training-quantized model
run by onnxruntime, labelled with its format), ``accuracy_drop`` (float minus quantized top-1),
``predicted_accuracy_drop`` (cheap: a drop predictor refitted on the drops measured so far; a
constraint on it screens policies before any PTQ runs), ``macs``, ``params``, ``PROFILE.METRIC`` (see ``nas devices``); a cpu profile's
``latency_ms`` is predicted from its latency model when one is named, else measured (on this host,
or on its board over TVM RPC); its ``tvm_latency_ms`` is the TVM-compiled subnet measured there,
compiled from the ``nas tune-space`` database when one exists.
Relative paths are relative to the config file. The job stores this config, so ``nas worker``
rebuilds the same evaluator from the storage alone.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from hw_profiles import get_profile
from nas._config_io import SEED, ConfigError, Range, check_ranges, from_table, ints, read_toml, subtable
from nas.jobs.objectives import CPU_METRICS, Constraint, MetricCatalog, Objective, ObjectiveError
from search_spaces import get_space

DEFAULT_STORAGE = "sqlite:///nas.db"
ACCURACY_METRICS = ("accuracy", "accuracy_drop")
PREDICTED_DROP = "predicted_accuracy_drop"


@dataclass(frozen=True)
class SearchSettings:
    space: str = "tiny_mbv3"
    algorithm: str = "auto"  # nas.searchers.resolve_searcher: linas with an expensive objective, else nsga2
    budget: int = 100
    seed: int = 0
    job: str = ""
    storage: str = DEFAULT_STORAGE
    batch_size: int = 0  # 0: automatic
    # ``nas search --budget`` uses the same range
    RANGES = {"budget": ints(1, 1_000_000), "seed": SEED, "batch_size": ints(0, 10_000)}

    def __post_init__(self) -> None:
        check_ranges(self, self.RANGES)


@dataclass(frozen=True)
class AccuracySettings:
    checkpoint: str = ""
    data: str = ""  # default: the data the checkpoint was trained on


@dataclass(frozen=True)
class QuantizationSettings:
    method: str = "minmax"
    samples: int = 256
    sequential_baseline: bool = True
    RANGES = {"samples": ints(1, 100_000)}  # as nas.training.quantized.QuantSettings

    def __post_init__(self) -> None:
        check_ranges(self, self.RANGES)

    def settings(self):
        from nas.training.quantized import QuantizationError, QuantSettings

        try:
            return QuantSettings(method=self.method, samples=self.samples)
        except QuantizationError as err:
            raise ConfigError(f"[quantization]: {err}") from None


@dataclass(frozen=True)
class CodesignSettings:
    """``[codesign]``: how a co-design space (``<space>+hw(<device>)``) is searched (``nas.jobs.codesign``)."""

    mode: str = "joint"


@dataclass(frozen=True)
class ObjectiveSpec:
    name: str
    metric: str
    direction: str = "minimize"


@dataclass(frozen=True)
class ConstraintSpec:
    metric: str
    op: str
    bound: float
    TOML_TYPES = {"bound": float}
    RANGES = {"bound": Range()}  # any finite number

    def __post_init__(self) -> None:
        check_ranges(self, self.RANGES)


@dataclass(frozen=True)
class SearchConfig:
    search: SearchSettings = field(default_factory=SearchSettings)
    accuracy: AccuracySettings = field(default_factory=AccuracySettings)
    quantization: QuantizationSettings = field(default_factory=QuantizationSettings)
    codesign: CodesignSettings = field(default_factory=CodesignSettings)
    latency_models: dict = field(default_factory=dict)
    objectives: tuple = ()
    constraints: tuple = ()
    base_dir: str = "."

    @classmethod
    def from_dict(cls, blob: dict, *, source: str = "config", base_dir: str = ".") -> "SearchConfig":
        known = {"search", "accuracy", "quantization", "codesign", "latency_models", "objectives", "constraints"}
        unknown = sorted(set(blob) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown table(s) {unknown}; valid: {sorted(known)}")
        search = from_table(SearchSettings, subtable(blob, "search", source), source=f"{source} [search]")
        accuracy = from_table(AccuracySettings, subtable(blob, "accuracy", source), source=f"{source} [accuracy]")
        quantization = from_table(QuantizationSettings, subtable(blob, "quantization", source),
                                  source=f"{source} [quantization]")
        quantization.settings()  # checks the values
        codesign = from_table(CodesignSettings, subtable(blob, "codesign", source), source=f"{source} [codesign]")
        from nas.jobs.codesign import MODES

        if codesign.mode not in MODES:
            raise ConfigError(f"{source} [codesign]: mode must be one of {list(MODES)}, got {codesign.mode!r}")
        models = subtable(blob, "latency_models", source)
        for key, value in models.items():
            if not isinstance(value, str):
                raise ConfigError(f"{source} [latency_models]: {key} must be a folder path string, got {value!r}")
        objectives = tuple(_rows(blob, "objectives", ObjectiveSpec, source))
        constraints = tuple(_rows(blob, "constraints", ConstraintSpec, source))
        if not objectives:
            raise ConfigError(f"{source}: needs at least one [[objectives]] table with name and metric")
        return cls(search=search, accuracy=accuracy, quantization=quantization, codesign=codesign,
                   latency_models=dict(models),
                   objectives=objectives,
                   constraints=constraints, base_dir=base_dir)

    @classmethod
    def from_toml(cls, path: Path) -> "SearchConfig":
        path = Path(path)
        return cls.from_dict(read_toml(path), source=str(path), base_dir=str(path.parent.resolve()))

    def to_dict(self) -> dict:
        """The TOML-shaped dict (with ``base_dir``), as stored in the job."""
        return {"search": asdict(self.search), "accuracy": asdict(self.accuracy),
                "quantization": asdict(self.quantization), "codesign": asdict(self.codesign),
                "latency_models": dict(self.latency_models), "objectives": [asdict(o) for o in self.objectives],
                "constraints": [asdict(c) for c in self.constraints], "base_dir": self.base_dir}

    @classmethod
    def from_stored(cls, blob: dict) -> "SearchConfig":
        blob = dict(blob)
        base_dir = blob.pop("base_dir", ".")
        return cls.from_dict(blob, source="stored job config", base_dir=base_dir)

    def path(self, text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    @property
    def space_name(self) -> str:
        """``[search] space`` with every accelerator profile given by a relative path (``+hw(x.toml)``)
        made absolute against the config's folder, as every other path: the job then records a name
        that resolves from any working directory."""
        return re.sub(r"\+hw\(([^()]+\.toml)\)", lambda m: f"+hw({self.path(m[1])})", self.search.space)

    def metric(self, name: str) -> str:
        """``name`` with a device profile given by a relative path (``boards/x.toml.latency_ms``) made
        absolute against the config's folder."""
        device, dot, metric = name.rpartition(".")
        return f"{self.path(device)}.{metric}" if dot and device.endswith(".toml") else name

    # ------------------------------------------------------------------ building
    def build(self):
        """``(space, objectives, constraints, catalog, extra)``; loads checkpoints and latency models."""
        from nas.profiling.latency_model import LatencyModel

        space = get_space(self.space_name)
        models = {name: LatencyModel.load(self.path(p), space=space) for name, p in self.latency_models.items()}
        measure = {}
        metrics = [self.metric(o.metric) for o in self.objectives] + [self.metric(c.metric) for c in self.constraints]
        for metric in metrics:
            device, _, name = metric.rpartition(".")
            if name in CPU_METRICS and get_profile(device).kind == "cpu":
                _check_backend(space, get_profile(device), name, metric)
                if name == "tvm_latency_ms" or device not in models:
                    measure[metric] = host_measurer(space, get_profile(device), tvm=(name == "tvm_latency_ms"))
        catalog = MetricCatalog(space, latency_models=models, measure=measure)
        extra = {"config": self.to_dict(), "profiles": sorted({m.rpartition(".")[0] for m in metrics if "." in m})}
        if hasattr(space, "policy"):  # int8 latencies depend on the instruction set the kernels use
            from kernels.quantize import cpu_isa

            extra["cpu_isa"] = cpu_isa()
        objectives = []
        accuracy_metrics = None
        for spec in self.objectives:
            if spec.metric in ACCURACY_METRICS:
                accuracy_metrics = accuracy_metrics or self._accuracy(space)
                extra["checkpoint_sha256"] = accuracy_metrics.checkpoint_hash
                objectives.append(Objective(spec.name, accuracy_metrics.fn(spec.metric), direction=spec.direction))
            else:
                objectives.append(Objective(spec.name, self.metric(spec.metric), direction=spec.direction))
        if PREDICTED_DROP in metrics:
            accuracy_metrics = accuracy_metrics or self._accuracy(space)
            if accuracy_metrics.quantized is None:
                raise ConfigError(f"metric {PREDICTED_DROP!r} needs a space with a quantization policy, e.g. "
                                  f"{space.name}+q; [search] space = {space.name!r}")
            predicted = accuracy_metrics.quantized.predicted_drop
            network_of = accuracy_metrics.network_of
            catalog.cheap[PREDICTED_DROP] = predicted if network_of is None else \
                (lambda archs: predicted([network_of(a) for a in archs]))
        try:
            constraints = [Constraint(self.metric(c.metric), c.op, c.bound) for c in self.constraints]
        except ObjectiveError as err:
            raise ConfigError(f"[[constraints]]: {err}") from None
        return space, objectives, constraints, catalog, extra

    def _accuracy(self, space):
        if not self.accuracy.checkpoint:
            raise ConfigError("metric 'accuracy' needs [accuracy] checkpoint = a `nas train` output folder")
        from nas.jobs.accuracy import AccuracyMetrics

        return AccuracyMetrics.open(self.path(self.accuracy.checkpoint), space, data=self.accuracy.data or None,
                                    quantization=self.quantization.settings())


def _check_backend(space, profile, name: str, metric: str) -> None:
    from nas.profiling.builds import QuantizedBackendError, check_backend

    spec = profile.spec
    backend = "tvm" if name == "tvm_latency_ms" or spec.backend == "tvm" or spec.rpc_key else spec.backend
    try:
        check_backend(space, backend, metric)
    except QuantizedBackendError as err:
        raise ConfigError(str(err)) from None


def host_measurer(space, profile, *, tvm: bool = False):
    """``arch -> {metric: Metric}``: ``profile``'s latency measured where the profile says (this host
    with its backend and threads, or its board over TVM RPC), on a seed-0 supernet as ``nas profile``
    builds (built on first use). ``tvm``: the TVM-compiled subnet (``tvm_latency_ms``), from the
    (profile, space) tuning database of ``nas tune-space`` when it exists."""
    from hw_profiles.tvm_measured import TvmMeasuredCostModel, measured_model_for
    from nas._cache import default_db_dir

    state = {}

    def measure(arch):
        from nas.profiling.builds import labelled, measured_for

        if "model" not in state:
            db = default_db_dir(profile, getattr(space, "base", space))
            database = db if db.is_dir() else None
            state["model"] = measured_for(space, TvmMeasuredCostModel if tvm else measured_model_for, profile,
                                          database=database)
        return labelled(state["model"].measure(arch), space, arch)

    return measure


def _rows(blob: dict, key: str, cls, source: str) -> list:
    rows = blob.get(key, [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{source}: {key} must be an array of tables ([[{key}]])")
    out = []
    for i, row in enumerate(rows):
        where = f"{source} [[{key}]] #{i + 1}"
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in row]
        if missing:
            raise ConfigError(f"{where}: missing key(s) {missing}")
        out.append(from_table(cls, row, source=where))
    return out

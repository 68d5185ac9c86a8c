"""``PipelineConfig``: the settings of ``nas run`` (train → profile → search → front → export), from TOML.

Layout (every table but ``[[objectives]]`` is optional; see ``experiments/quickstart.toml``)::

    [train]                 # any TrainConfig key (nas/training/config.py)
    [profile]               # device (a cpu profile, default host-cpu) + ProfileSettings keys
    [search]                # SearchSettings keys (nas/jobs/config.py) except space; job defaults
                            #   to the config file's name, storage to OUT/nas.db (a postgresql://
                            #   URL lets workers share it)
    [[objectives]]          # as in a search config; one must be metric "accuracy" and one
    [[constraints]]         #   "<profile device>.latency_ms" (predicted by the stage-2 model)
    [front]                 # measure = front members whose latency is measured to check the model
    [export]                # latency_budget_ms, formats, repeats

What the pipeline fills in itself: the search space is ``[train] space``; the job is named after the
config file unless ``[search] job`` names it; the job store is ``OUT/nas.db`` (SQLite) unless
``[search] storage`` names another; accuracy comes from ``OUT/train`` and the device's latency from
the model in ``OUT/profile``. Construction validates everything and does no I/O; every problem is a
one-line :class:`~nas._config_io.ConfigError` naming the key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from hw_profiles import get_profile
from nas._config_io import (PROFILE_RANGES, REPEATS, ConfigError, check_host_port, check_ranges, from_table, ints,
                            numbers, read_toml, subtable, typed_values)
from nas.export.subnet import FORMATS, parse_formats
from nas.jobs.objectives import Constraint, MetricCatalog, Objective, ObjectiveError
from nas.profiling.device import ProfileSettings
from nas.jobs.config import SearchConfig
from nas.training.config import TrainConfig
from search_spaces import NASError, get_space
from search_spaces.quantization import split_quantized_name

TABLES = ("train", "profile", "search", "objectives", "constraints", "front", "export")
STORE_NAME = "nas.db"
TRAIN_DIR, PROFILE_DIR, EXPORT_DIR = "train", "profile", "export"


@dataclass(frozen=True)
class FrontSettings:
    measure: int = 3  # front members whose latency is measured beside the prediction (0: none)
    RANGES = {"measure": ints(0, 1000)}

    def __post_init__(self) -> None:
        check_ranges(self, self.RANGES)


@dataclass(frozen=True)
class ExportSettings:
    latency_budget_ms: float = 5.0  # the most accurate front member predicted within it is exported
    formats: str = ",".join(FORMATS)
    repeats: int = 20
    RANGES = {"latency_budget_ms": numbers(0, 1_000_000, low_open=True), "repeats": REPEATS}

    def __post_init__(self) -> None:
        check_ranges(self, self.RANGES)
        try:
            parse_formats(self.formats)
        except NASError as err:
            raise ConfigError(f"formats: {err}") from None


@dataclass(frozen=True)
class PipelineConfig:
    """Every stage's settings; :meth:`search_config` binds the search to an output folder."""

    train: TrainConfig
    device: str
    profile: ProfileSettings
    search_table: dict
    objectives: tuple
    constraints: tuple
    front: FrontSettings = field(default_factory=FrontSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    accuracy_objective: str = ""
    latency_objective: str = ""
    storage: str = ""  # the job store URL; empty: OUT/nas.db

    @classmethod
    def from_dict(cls, blob: dict, *, source: str = "config", default_job: str = "pipeline") -> "PipelineConfig":
        """The config of the TOML document ``blob``; ``[search] job`` defaults to ``default_job``."""
        unknown = sorted(set(blob) - set(TABLES))
        if unknown:
            raise ConfigError(f"{source}: unknown table(s) {unknown}; valid: {list(TABLES)}")
        train = TrainConfig.from_dict(subtable(blob, "train", source), source=f"{source} [train]")
        profile_table = dict(subtable(blob, "profile", source))
        device = profile_table.pop("device", "host-cpu")
        if not isinstance(device, str):
            raise ConfigError(f"{source} [profile]: device must be a string, got {device!r}")
        if get_profile(device).kind != "cpu":  # an unknown name lists the profiles
            raise ConfigError(f"{source} [profile]: device {device!r} is not a cpu profile (this host, or a board "
                              "over TVM RPC); use host-cpu or e.g. rpi4")
        profile_values = typed_values(ProfileSettings, profile_table, source=f"{source} [profile]")
        try:
            profile = ProfileSettings(**profile_values)
            check_ranges(profile, PROFILE_RANGES)
            check_host_port(profile.rpc_tracker, "rpc_tracker")
        except NASError as err:
            raise ConfigError(f"{source} [profile]: {err}") from None
        if split_quantized_name(train.space) is not None or "+hw(" in train.space or train.space.startswith("tasks("):
            raise ConfigError(f"{source} [train] space = {train.space!r}: a supernet trains the network alone; a "
                              "quantized or co-design search runs with `nas search` (see "
                              "experiments/quantized_search.toml, experiments/codesign.toml)")
        search_table = dict(subtable(blob, "search", source))
        if "space" in search_table and search_table["space"] != train.space:
            raise ConfigError(f"{source} [search]: remove space (it is [train] space)")
        search_table.pop("space", None)
        storage = search_table.pop("storage", "")
        if not isinstance(storage, str):
            raise ConfigError(f"{source} [search]: storage must be a URL string such as "
                              f"postgresql://USER@HOST/DB, got {storage!r}")
        search_table.setdefault("job", default_job)
        front = from_table(FrontSettings, subtable(blob, "front", source), source=f"{source} [front]")
        export = from_table(ExportSettings, subtable(blob, "export", source), source=f"{source} [export]")
        # the search part goes through SearchConfig's own checks now, with placeholder folders
        probe = SearchConfig.from_dict(
            {"search": {**search_table, "space": train.space}, "objectives": blob.get("objectives", []),
             "constraints": blob.get("constraints", [])}, source=source)
        if not probe.search.job or "/" in probe.search.job:
            raise ConfigError(f"{source} [search]: job must be a non-empty name without '/', got {probe.search.job!r}")
        acc, lat = _check_metrics(probe, device, train.space, source)
        return cls(train=train, device=device, profile=profile, search_table=search_table,
                   objectives=tuple(blob.get("objectives", [])), constraints=tuple(blob.get("constraints", [])),
                   front=front, export=export, accuracy_objective=acc, latency_objective=lat, storage=storage)

    @classmethod
    def from_toml(cls, path: Path) -> "PipelineConfig":
        """The config in the TOML file ``path``; without ``[search] job`` the job is named after the
        file (``cifar10.toml`` -> ``cifar10``)."""
        return cls.from_dict(read_toml(Path(path)), source=str(path), default_job=Path(path).stem)

    @property
    def job(self) -> str:
        return self.search_table["job"]

    @property
    def baseline_job(self) -> str:
        """The random-search baseline at the same budget and seed (as ``nas search`` names it)."""
        return f"{self.job}.random"

    def search_config(self, out: Path) -> SearchConfig:
        """The search job's config bound to ``out``: store, checkpoint and latency model inside it."""
        out = Path(out).resolve()
        return SearchConfig.from_dict(
            {"search": {**self.search_table, "space": self.train.space, "storage": self.storage or storage_url(out)},
             "accuracy": {"checkpoint": TRAIN_DIR}, "latency_models": {self.device: PROFILE_DIR},
             "objectives": list(self.objectives), "constraints": list(self.constraints)},
            source="pipeline search", base_dir=str(out))

    def to_dict(self) -> dict:
        return {"train": self.train.to_dict(), "profile": {"device": self.device, **asdict(self.profile)},
                "search": {**self.search_table, **({"storage": self.storage} if self.storage else {})},
                "objectives": list(self.objectives), "constraints": list(self.constraints),
                "front": asdict(self.front), "export": asdict(self.export)}


def storage_url(out: Path) -> str:
    """The SQLite job store of a pipeline run in ``out``."""
    return f"sqlite:///{Path(out).resolve() / STORE_NAME}"


def _check_metrics(probe: SearchConfig, device: str, space_name: str, source: str) -> tuple[str, str]:
    """Every metric resolves; returns the names of the accuracy and the device-latency objectives."""
    from nas.searchers import AUTO_SEARCHER, list_searchers

    algorithms = [AUTO_SEARCHER, *list_searchers()]
    if probe.search.algorithm not in algorithms:
        raise ConfigError(f"{source} [search]: algorithm {probe.search.algorithm!r} is not one of {algorithms}")
    try:  # directions and constraint operators, as the search will build them
        [Objective(o.name, o.metric, direction=o.direction) for o in probe.objectives]
        [Constraint(c.metric, c.op, c.bound) for c in probe.constraints]
    except ObjectiveError as err:
        raise ConfigError(f"{source}: {err}") from None
    space = get_space(space_name)
    catalog = MetricCatalog(space, latency_models={device: None})  # presence is all check() reads
    metrics = [o.metric for o in probe.objectives] + [c.metric for c in probe.constraints]
    for metric in metrics:
        if metric == "accuracy":
            continue
        try:
            catalog.check(metric)
        except ObjectiveError as err:
            raise ConfigError(f"{source}: {err}") from None
    acc = [o for o in probe.objectives if o.metric == "accuracy"]
    lat = [o for o in probe.objectives if o.metric == f"{device}.latency_ms"]
    if len(acc) != 1 or acc[0].direction != "maximize":
        raise ConfigError(f"{source}: needs exactly one [[objectives]] with metric = \"accuracy\" and "
                          "direction = \"maximize\"")
    if len(lat) != 1 or lat[0].direction != "minimize":
        raise ConfigError(f"{source}: needs exactly one minimised [[objectives]] with metric = "
                          f"\"{device}.latency_ms\" (the [profile] device; the export budget applies to it)")
    return acc[0].name, lat[0].name

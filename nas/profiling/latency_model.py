"""A device's latency model as built by ``nas profile``: predicted latency with provenance.

Contract: :class:`LatencyModel` holds the fitted kernel-level and arch-level predictors of one
(space, device profile, backend, threads), the held-out report they were judged by
(:class:`~nas.profiling.device.ProfileResult`, ``report``), and which one
answers by default (the one with more held-out subnets within ±10%). ``predict(archs)`` returns one
``Metric`` per arch, tagged ``predicted`` with the profile's ``name@version``; its ``spread`` is
the held-out RMSE (ms) of the predictor used, so a prediction is never read as a measurement, and its
``interval``/``coverage`` the calibrated prediction interval of the report's ``intervals`` section
(:mod:`nas.profiling._intervals`; none for a model built before intervals or with too few subnets).
It is plain JSON on disk (``latency_model.json``); loading never unpickles anything.

The file is untrusted input with one schema, :data:`SCHEMA` (declared below, checked by one function):
every key, its type, its valid range and array lengths; then what relates keys (the report describes
this model, the arch-level vectors have the space's feature count; a CNN file from before feature
layouts were recorded, five op kinds wide, is widened losslessly, see ``_check_features``). A file
that breaks it is a one-line :class:`LatencyModelError` naming the file, the key and the valid values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from hw_profiles import Metric
from nas._config_io import Range, ints, numbers, shown
from nas.profiling._intervals import bounds, consistency_error
from nas.profiling._report import ProfileJobError, ProfileResult
from predictors.features import AGGREGATES, EXTRAS, FEATURE_LAYOUT, arch_features, layer_aggregates
from predictors.latency import ArchLevelPredictor, KernelLevelPredictor
from search_spaces import ACTIVATIONS, OPS, ArchConfig, NASError, SearchSpace, get_space
from search_spaces.layers import PRECISION_BITS

FORMAT_VERSION = 1
PREDICTORS = ("kernel_level", "arch_level")
MAX_FILE_BYTES = 256 << 20
"""A latency model file larger than this (256 MiB) is refused unread (ofa_mbv3 with 2,000 subnets of
coverage is a few MB)."""


class LatencyModelError(NASError, ValueError):
    """A latency model folder or file is missing, unreadable, breaks the schema or belongs to another space."""


# ---------------------------------------------------------------------------------------- the schema
@dataclass(frozen=True)
class Num:
    """A JSON number within ``valid`` (``None`` too when ``null``)."""

    valid: Range
    null: bool = False


@dataclass(frozen=True)
class Str:
    """A JSON string: one of ``choices``, or matching ``pattern`` (described by ``what``)."""

    choices: tuple = ()
    pattern: str = r"[^\x00-\x1f\x7f]{0,256}"
    what: str = "one line of text of at most 256 characters"
    null: bool = False


@dataclass(frozen=True)
class Bool:
    """true or false."""


@dataclass(frozen=True)
class Array:
    """A JSON array of ``min_len..max_len`` items, each valid as ``item``."""

    item: object
    min_len: int
    max_len: int


@dataclass(frozen=True)
class Obj:
    """A JSON object with exactly the keys of ``keys`` (those in ``optional`` may be left out)."""

    keys: Mapping[str, object]
    optional: tuple = ()
    null: bool = False
    extra: bool = False  # other keys allowed (and not checked)


def check(node, value, where: str) -> None:
    """``value`` valid as the schema ``node``, else LatencyModelError naming ``where`` and the valid values."""
    if value is None and getattr(node, "null", False):
        return
    if isinstance(node, Num):
        try:
            holds = node.valid.holds(value)
        except OverflowError:  # an integer beyond the float range where a float is wanted
            holds = False
        if not holds:
            raise LatencyModelError(f"{where} must be {_words(node.valid)}, got {shown(value)}")
    elif isinstance(node, Str):
        if not isinstance(value, str):
            raise LatencyModelError(f"{where} must be a string, got {shown(value)}")
        if node.choices and value not in node.choices:
            raise LatencyModelError(f"{where} must be one of {list(node.choices)}, got {shown(value)}")
        if not node.choices and not re.fullmatch(node.pattern, value):
            raise LatencyModelError(f"{where} must be {node.what}, got {shown(value)}")
    elif isinstance(node, Bool):
        if not isinstance(value, bool):
            raise LatencyModelError(f"{where} must be true or false, got {shown(value)}")
    elif isinstance(node, Array):
        if not isinstance(value, list):
            raise LatencyModelError(f"{where} must be an array, got {shown(value)}")
        if not node.min_len <= len(value) <= node.max_len:
            size = f"{node.min_len}" if node.min_len == node.max_len else f"{node.min_len} to {node.max_len}"
            raise LatencyModelError(f"{where} must have {size} items, got {len(value)}")
        for i, item in enumerate(value):
            check(node.item, item, f"{where}[{i}]")
    elif isinstance(node, Obj):
        if not isinstance(value, dict):
            raise LatencyModelError(f"{where} must be an object, got {shown(value)}")
        missing = [k for k in node.keys if k not in value and k not in node.optional]
        unknown = [] if node.extra else sorted(set(value) - set(node.keys))
        if missing or unknown:
            raise LatencyModelError(f"{where} has missing key(s) {shown(missing, 120)} and unknown key(s) "
                                    f"{shown(unknown, 120)}; valid keys: {', '.join(node.keys)}")
        for key, sub in node.keys.items():
            if key in value:
                check(sub, value[key], f"{where}.{key}")
    else:  # pragma: no cover - a schema bug
        raise TypeError(f"unknown schema node {node!r}")


def _words(valid: Range) -> str:
    return str(valid) if valid.integer else f"a finite number {valid}"


MS = Num(numbers(0, 1e9))  # a latency or RMSE in ms (up to ~11 days)
FRACTION = Num(numbers(0, 1))
CORRELATION = Num(numbers(-1, 1))
COUNT = Num(ints(0, 10**7))
CHANNELS = Num(ints(1, 1 << 20))
TEXT = Str()
REF = Str(pattern=r"[^@\s]{1,128}@[^@\s]{1,200}", what="a device profile's name@version (e.g. 'host-cpu@1')")
BACKENDS = ("onnxruntime", "tvm", "torch")
MAX_LAYERS = 1_000_000
MAX_FEATURES = 1_000_000
SPREAD = Obj({"min": MS, "median": MS, "max": MS})
HELD_OUT = Obj({"n": Num(ints(1, 10**7)), "rmse": MS, "within_10pct": FRACTION, "spearman": CORRELATION,
                "kendall_tau": CORRELATION})
LAYER = Obj({"op": Str(choices=OPS), "in_channels": CHANNELS, "out_channels": CHANNELS, "kernel": Num(ints(1, 1024)),
             "stride": Num(ints(1, 1024)), "groups": CHANNELS, "in_hw": Array(Num(ints(1, 1 << 16)), 2, 2),
             "act": Str(choices=ACTIVATIONS), "se_channels": Num(ints(0, 1 << 20)), "residual": Bool(), "bias": Bool(),
             "bn": Bool(), "block": TEXT, "precision": Str(choices=tuple(PRECISION_BITS), null=True),
             "out_hw": Array(Num(ints(1, 1 << 16)), 2, 2), "se": Bool(), "latency_ms": MS},
            optional=("out_hw", "se"))  # derived from the others (LayerSpec.to_dict), not read back
LOG_Q = Num(numbers(0, 20))  # log of a ratio: e^20 is beyond any honest interval
INTERVAL = Obj({"coverage": Num(numbers(0.5, 0.99)), "model_log_q": LOG_Q, "drift_log_q": LOG_Q, "log_q": LOG_Q,
                "n_calibration": COUNT, "n_held_out": COUNT, "held_out_coverage": FRACTION,
                "remeasured_coverage": FRACTION, "median_rel_width": Num(numbers(0, 1e9))}, null=True)
REPORT = Obj({
    "device": REF, "backend": Str(choices=BACKENDS), "threads": Num(ints(0, 4096)), "space": TEXT,
    "space_version": TEXT, "samples": Num(ints(1, 10**7)), "n_fit": COUNT, "n_held_out": COUNT,
    "layer_workloads": COUNT, "seed": Num(ints(0, 2**63 - 1)), "warmup": COUNT, "repeats": Num(ints(1, 10**7)),
    "latency_ms": SPREAD, "median_iqr_pct": Num(numbers(0, 1e9)),
    "repeatability": Obj({"within_10pct": FRACTION, "spearman": CORRELATION}),
    "drift": Obj({"correction": Bool(), "chunk": Num(ints(1, 10**7)), "reference_arch_id": TEXT,
                  "reference_arch": Obj({}, extra=True), "reference_ms": SPREAD},
                 optional=("reference_arch",), null=True),  # the arch: checked by space.parse when read
    "held_out": Obj({"kernel_level": HELD_OUT, "arch_level": HELD_OUT, "macs_proxy": HELD_OUT},
                    optional=("macs_proxy",)),
    "intervals": Obj({"kernel_level": INTERVAL, "arch_level": INTERVAL}),
    "wall_s": Num(numbers(0, 1e9)),
    "machine": Obj({"platform": TEXT, "processor": TEXT, "cpu_count": Num(ints(1, 10**6), null=True)}, extra=True),
    "default_predictor": Str(choices=PREDICTORS)}, optional=("drift", "intervals"))
SCHEMA = Obj({
    "format_version": Num(ints(FORMAT_VERSION, FORMAT_VERSION)),
    "space": Str(pattern=r"[^\s]{1,256}", what="a search space name"), "space_version": TEXT, "profile": REF,
    "backend": Str(choices=BACKENDS), "threads": Num(ints(0, 4096)), "default": Str(choices=PREDICTORS),
    "features": Str(pattern=r"[^\x00-\x1f\x7f]{1,4096}", what="a feature layout (predictors.features.FEATURE_LAYOUT)"),
    "report": REPORT,
    "kernel_level": Obj({"kind": Str(choices=("kernel_level",)), "coef": Array(Num(numbers(0, 1e9)), 3, 3),
                         "overhead_floor_ms": MS, "layers": Array(LAYER, 1, MAX_LAYERS)},
                        optional=("overhead_floor_ms",)),  # absent in files from before it (read as 0)
    "arch_level": Obj({"kind": Str(choices=("arch_level",)), "alpha": Num(numbers(0, 1e12), null=True),
                       "alpha_fitted": Num(numbers(0, 1e12), null=True),
                       "mean": Array(Num(numbers(-1e15, 1e15)), 1, MAX_FEATURES),
                       "scale": Array(Num(numbers(0, 1e15, low_open=True)), 1, MAX_FEATURES),
                       "coef": Array(Num(numbers(-1e9, 1e9)), 1, MAX_FEATURES),
                       "intercept": Num(numbers(-1e9, 1e9))}),
}, optional=("features",))  # absent in files written before it: the layout of the five CNN op kinds
"""``latency_model.json`` (:meth:`LatencyModel.to_dict`): every key, type, range and array length."""

# the report describes this model: (report key, model key)
_SAME = (("device", "profile"), ("backend", "backend"), ("threads", "threads"), ("space", "space"),
         ("space_version", "space_version"), ("default_predictor", "default"))


def _feature_count(space: SearchSpace) -> int:
    """Columns of :func:`predictors.features.arch_features` for ``space``."""
    return int(sum(space.cardinalities)) + layer_aggregates([]).size


UNRECORDED_OPS = ("conv", "pwconv", "dwconv", "gap", "linear")
UNRECORDED_EXTRAS = ("se_count", "se_macs", "residual_adds", "hswish_rows")
"""The feature layout of files written before layouts were recorded (no ``features`` key): the five
CNN op kinds' ``AGGREGATES``, then these four counts, after the space's one-hot columns."""


def _unrecorded_columns(space: SearchSpace) -> np.ndarray:
    """Where each column of the unrecorded layout sits in this version's features of ``space``: the
    one-hot columns and those aggregates keep their meaning (the rows of a CNN table count the same);
    the columns that layout lacks (transformer op kinds, GELU counts) are 0 for every CNN."""
    hot = int(sum(space.cardinalities))
    per_op = [hot + OPS.index(op) * len(AGGREGATES) + a for op in UNRECORDED_OPS for a in range(len(AGGREGATES))]
    extras = [hot + len(OPS) * len(AGGREGATES) + EXTRAS.index(e) for e in UNRECORDED_EXTRAS]
    return np.array([*range(hot), *per_op, *extras], dtype=np.int64)


def _cnn_only(space: SearchSpace) -> bool:
    """Whether ``space``'s layer tables hold only the unrecorded layout's op kinds (judged on its
    smallest arch: a space of another family, e.g. a ViT, has its op kinds in every table)."""
    try:
        rows = space.layers(space.canonicalize(space.decode([0] * len(space.params))))
    except NASError:
        return False
    return all(row.op in UNRECORDED_OPS for row in rows)


def _check_features(data: Mapping, space: SearchSpace, source: str) -> Mapping:
    """The arch-level model's document, on the features this version computes, else LatencyModelError:
    a file must record this ``features`` layout, or record none (it predates them) and have vectors of
    the space's width, or of the unrecorded layout's width (:data:`UNRECORDED_OPS`), which are
    widened losslessly: the new columns get mean 0, scale 1 and coef 0, so predictions are unchanged."""
    layout = data.get("features")
    if layout is not None and layout != FEATURE_LAYOUT:
        raise LatencyModelError(f"{source}: features={shown(layout, 160)} is not the layout this version computes "
                                f"({FEATURE_LAYOUT}); rebuild it with `nas profile`")
    arch_level = data["arch_level"]
    features = _feature_count(space)
    old = _unrecorded_columns(space)
    if layout is None and all(len(arch_level[key]) == old.size for key in ("mean", "scale", "coef")) \
            and _cnn_only(space):
        widened = dict(arch_level)
        for key, fill in (("mean", 0.0), ("scale", 1.0), ("coef", 0.0)):
            column = np.full(features, fill)
            column[old] = arch_level[key]
            widened[key] = column.tolist()
        return widened
    for key in ("mean", "scale", "coef"):
        got = len(arch_level[key])
        if got != features:
            why = " (a file written before feature layouts were recorded)" if layout is None else ""
            raise LatencyModelError(f"{source}: arch_level.{key} must have {features} items (the features of "
                                    f"{space.name}), got {got}{why}; rebuild it with `nas profile`")
    return arch_level


# ---------------------------------------------------------------------------------------- the model
class LatencyModel:
    def __init__(self, *, space: SearchSpace, profile_ref: str, backend: str, threads: int,
                 kernel_level: KernelLevelPredictor, arch_level: ArchLevelPredictor, default: str,
                 report: ProfileResult | Mapping) -> None:
        if default not in PREDICTORS:
            raise ValueError(f"default must be one of {list(PREDICTORS)}, got {default!r}")
        self.space, self.profile_ref, self.backend, self.threads = space, profile_ref, backend, threads
        self.kernel_level, self.arch_level, self.default = kernel_level, arch_level, default
        self.report = report if isinstance(report, ProfileResult) else ProfileResult.from_json(report)

    def predict(self, archs: Sequence[ArchConfig], *, predictor: str | None = None) -> list[Metric]:
        """Predicted batch-1 latency (ms) of each arch, with provenance."""
        name = predictor or self.default
        if name not in PREDICTORS:
            raise ValueError(f"predictor must be one of {list(PREDICTORS)}, got {name!r}")
        archs = [self.space.validate(a) for a in archs]
        if not archs:
            return []
        if name == "kernel_level":
            values = self.kernel_level.predict([self.space.layers(a) for a in archs])
        else:
            values = self.arch_level.predict(arch_features(self.space, archs))
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise LatencyModelError(f"the {name} latency model of {self.profile_ref} predicts a non-finite latency "
                                    "for some of these subnets; rebuild it with `nas profile`")
        rmse = self.report.rmse_ms(name)
        policy = getattr(self.space, "policy", None)
        entry = self.report.interval(name)
        values = np.maximum(values, 0.0)
        return [Metric(value=float(v), unit="ms", source="predicted", profile=self.profile_ref, spread=rmse,
                       precision=policy(a).label if policy else "fp32", interval=interval,
                       coverage=entry["coverage"] if interval else None)
                for a, v, interval in zip(archs, values, bounds(values, entry))]

    def reference(self) -> tuple[ArchConfig, float] | None:
        """The profile run's reference subnet and its median latency over the run (ms): measuring a
        subnet beside it (``MeasuredCostModel.measure_paired``) gives its latency at the run's machine
        speed, the speed predictions are at. None for a model built before the arch was recorded."""
        drift = self.report.drift or {}
        if not drift.get("correction") or "reference_arch" not in drift:
            return None
        return self.space.parse(drift["reference_arch"]), float(drift["reference_ms"]["median"])

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "space": self.space.name, "space_version": self.space.version,
                "profile": self.profile_ref, "backend": self.backend, "threads": self.threads,
                "default": self.default, "features": FEATURE_LAYOUT, "report": self.report.to_json(),
                "kernel_level": self.kernel_level.to_dict(), "arch_level": self.arch_level.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping, *, space: SearchSpace | None = None,
                  source: str = "latency model") -> "LatencyModel":
        """The model of a :meth:`to_dict` document, checked against :data:`SCHEMA` first; errors start
        with ``source`` (the file)."""
        version = data.get("format_version") if isinstance(data, dict) else None
        if not isinstance(data, dict) or version != FORMAT_VERSION or isinstance(version, bool):
            got = f"format_version {shown(version)}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
            raise LatencyModelError(f"{source}: format_version must be {FORMAT_VERSION} (a `nas profile` latency "
                                    f"model), got {got}; rebuild it with `nas profile`")
        check(SCHEMA, data, source)
        report = data["report"]
        for theirs, ours in _SAME:
            if report[theirs] != data[ours]:
                raise LatencyModelError(f"{source}: report.{theirs}={shown(report[theirs])} differs from "
                                        f"{ours}={shown(data[ours])}: the report is not this model's")
        for key, entry in (report.get("intervals") or {}).items():
            why = entry and consistency_error(entry, n_fit=report["n_fit"], n_held_out=report["n_held_out"])
            if why:
                raise LatencyModelError(f"{source}: report.intervals.{key}: {why}: the file was edited; "
                                        "rebuild it with `nas profile`")
        try:
            space = space or get_space(data["space"])
        except NASError as err:
            raise LatencyModelError(f"{source}: space: {err}") from None
        if space.name != data["space"] or space.version != data["space_version"]:
            raise LatencyModelError(f"{source} was built for space {data['space']}@{data['space_version']}, "
                                    f"not {space.name}@{space.version}")
        arch_level = _check_features(data, space, source)
        try:
            report = ProfileResult.from_json(report)
        except ProfileJobError as err:
            raise LatencyModelError(f"{source}: report: {err}; rebuild it with `nas profile`") from None
        reference = (report.drift or {}).get("reference_arch")
        if reference is not None:
            try:
                if space.parse(reference).arch_id != report.drift["reference_arch_id"]:
                    raise NASError("its arch_id is not reference_arch_id")
            except (NASError, ValueError, TypeError) as err:
                raise LatencyModelError(f"{source}: report.drift.reference_arch: {err}") from None
        predictors = {}
        for key, kind, document in (("kernel_level", KernelLevelPredictor, data["kernel_level"]),
                                    ("arch_level", ArchLevelPredictor, arch_level)):
            try:
                predictors[key] = kind.from_dict(document)
            except ValueError as err:  # e.g. a layer row LayerSpec refuses (groups that do not divide)
                raise LatencyModelError(f"{source}: {key}: {err}") from None
        return cls(space=space, profile_ref=data["profile"], backend=data["backend"], threads=data["threads"],
                   default=data["default"], report=report, **predictors)

    @classmethod
    def load(cls, path: Path | str, *, space: SearchSpace | None = None) -> "LatencyModel":
        """From a ``nas profile`` folder or its ``latency_model.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / "latency_model.json"
        name = f"latency model {str(path)!r}"
        try:
            with open(path, "rb") as stream:
                raw = stream.read(MAX_FILE_BYTES + 1)
        except (OSError, ValueError) as err:  # ValueError: a NUL in the path
            raise LatencyModelError(f"cannot read {name}: {getattr(err, 'strerror', None) or err}; "
                                    "build one with `nas profile --device DEVICE --space SPACE --out DIR`") from None
        if len(raw) > MAX_FILE_BYTES:
            raise LatencyModelError(f"{name} is larger than {MAX_FILE_BYTES} bytes: not a latency model")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, or an over-long integer literal
            raise LatencyModelError(f"{name} is not valid JSON: {err}") from None
        except RecursionError:
            raise LatencyModelError(f"{name} is not valid JSON: nested too deeply") from None
        return cls.from_dict(data, space=space, source=name)

"""A device's latency model as built by ``nas profile``: predicted latency with provenance.

Contract: :class:`LatencyModel` holds the fitted kernel-level and arch-level predictors of one
(space, device profile, backend, threads), the held-out report they were judged by
(:class:`~nas.profiling.device.ProfileResult`, ``report``), and which one
answers by default (the one with more held-out subnets within ±10%). ``predict(archs)`` returns one
``Metric`` per arch, tagged ``predicted`` with the profile's ``name@version``; its ``spread`` is
the held-out RMSE (ms) of the predictor used, so a prediction is never read as a measurement.
It is plain JSON on disk (``latency_model.json``); loading never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from hw_profiles import Metric
from nas.profiling._report import ProfileJobError, ProfileResult
from predictors.features import arch_features
from predictors.latency import ArchLevelPredictor, KernelLevelPredictor
from search_spaces import ArchConfig, NASError, SearchSpace, get_space

FORMAT_VERSION = 1
PREDICTORS = ("kernel_level", "arch_level")


class LatencyModelError(NASError, ValueError):
    """A latency model folder or file is missing, unreadable or belongs to another space."""


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
        rmse = self.report.rmse_ms(name)
        policy = getattr(self.space, "policy", None)
        return [Metric(value=float(max(v, 0.0)), unit="ms", source="predicted", profile=self.profile_ref,
                       spread=rmse, precision=policy(a).label if policy else "fp32")
                for a, v in zip(archs, np.asarray(values))]

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "space": self.space.name, "space_version": self.space.version,
                "profile": self.profile_ref, "backend": self.backend, "threads": self.threads,
                "default": self.default, "report": self.report.to_json(),
                "kernel_level": self.kernel_level.to_dict(), "arch_level": self.arch_level.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping, *, space: SearchSpace | None = None) -> "LatencyModel":
        if data.get("format_version") != FORMAT_VERSION:
            raise LatencyModelError(f"latency model format_version {data.get('format_version')!r} is not "
                                    f"{FORMAT_VERSION}; rebuild it with `nas profile`")
        space = space or get_space(data["space"])
        if space.name != data["space"] or space.version != data["space_version"]:
            raise LatencyModelError(f"latency model was built for space {data['space']}@{data['space_version']}, "
                                    f"not {space.name}@{space.version}")
        try:
            report = ProfileResult.from_json(data["report"])
        except ProfileJobError as err:
            raise LatencyModelError(f"latency model report: {err}; rebuild it with `nas profile`") from None
        return cls(space=space, profile_ref=data["profile"], backend=data["backend"], threads=data["threads"],
                   kernel_level=KernelLevelPredictor.from_dict(data["kernel_level"]),
                   arch_level=ArchLevelPredictor.from_dict(data["arch_level"]), default=data["default"],
                   report=report)

    @classmethod
    def load(cls, path: Path | str, *, space: SearchSpace | None = None) -> "LatencyModel":
        """From a ``nas profile`` folder or its ``latency_model.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / "latency_model.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise LatencyModelError(f"cannot read latency model {str(path)!r}: {err.strerror or err}; "
                                    "build one with `nas profile --device DEVICE --space SPACE --out DIR`") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise LatencyModelError(f"latency model {str(path)!r} is not valid JSON: {err}") from None
        try:
            return cls.from_dict(data, space=space)
        except (KeyError, TypeError) as err:
            raise LatencyModelError(f"latency model {str(path)!r} is malformed: missing or bad {err}") from None

"""The accuracy metrics of a search job, float or quantized, and the network a measured latency runs.

Contract: ``AccuracyMetrics.open(checkpoint, space, ...)`` loads the checkpoint once; ``fn("accuracy")``
and ``fn("accuracy_drop")`` are ``ArchConfig -> Metric`` callables (measured, expensive). For a plain
space ``accuracy`` is the float top-1 (``precision="fp32"``) and ``accuracy_drop`` is 0. For a space
with a quantization policy (``"<space>+q"``) ``accuracy`` is the top-1 of the post-training-quantized
model run by onnxruntime (``nas.training.quantized``), labelled ``int8``/``mixed``/``fp32`` by the
arch's policy, and ``accuracy_drop`` the float top-1 minus it. For a co-design space (``<space>+hw(...)``)
both are those of the arch's network part: the accelerator does not change what the network computes. A collapsed quantized accuracy (more
than ``nas.training.quantized.COLLAPSE_DROP`` below float) is kept as measured and warned about. Spreads are binomial standard errors.
The ``profile`` is ``<data>@ckpt-<checkpoint sha256[:12]>``; a figure served from the checkpoint's eval cache
says so there: ``...+cached-<measured_at>`` (``+cached`` for a quantized top-1, whose cache keeps no time).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hw_profiles import Metric
from nas._config_io import ConfigError
from search_spaces import AcceleratorSpace, ArchConfig, QuantizedSpace, SearchSpace


def _stderr(top1: float, n: int) -> float:
    return math.sqrt(top1 * (1 - top1) / max(n, 1))  # binomial standard error


@dataclass(frozen=True)
class AccuracyMetrics:
    space: SearchSpace
    evaluator: object  # nas.training.evaluation.CheckpointEvaluator
    quantized: object | None  # nas.training.quantized.QuantizedEvaluator for a quantized space
    checkpoint_hash: str
    profile: str
    network_of: Callable[[ArchConfig], ArchConfig] | None = None  # a co-design arch -> its network

    @classmethod
    def open(cls, checkpoint: Path, space: SearchSpace, *, data: str | None = None,
             quantization=None) -> "AccuracyMetrics":
        from nas.training.evaluation import CheckpointEvaluator
        from nas.training.quantized import QuantizedEvaluator

        if isinstance(space, AcceleratorSpace):  # accuracy never sees the accelerator
            inner = cls.open(checkpoint, space.base, data=data, quantization=quantization)
            return dataclasses.replace(inner, space=space, network_of=space.network)
        evaluator = CheckpointEvaluator(checkpoint, data=data)
        network = space.base if isinstance(space, QuantizedSpace) else space
        if evaluator.space.name != network.name:
            raise ConfigError(f"[accuracy] checkpoint is a {evaluator.space.name} supernet, but [search] space = "
                              f"{space.name!r}")
        quantized = QuantizedEvaluator(evaluator, space, quantization) if isinstance(space, QuantizedSpace) else None
        return cls(space=space, evaluator=evaluator, quantized=quantized, checkpoint_hash=evaluator.checkpoint_hash,
                   profile=f"{evaluator.data}@ckpt-{evaluator.checkpoint_hash[:12]}")

    def fn(self, metric: str) -> Callable[[ArchConfig], Metric]:
        """``ArchConfig -> Metric`` for ``accuracy`` or ``accuracy_drop``."""
        if metric not in ("accuracy", "accuracy_drop"):
            raise ConfigError(f"unknown accuracy metric {metric!r}; valid: accuracy, accuracy_drop")
        drop = metric == "accuracy_drop"

        def measure(arch) -> Metric:
            if self.network_of is not None:
                arch = self.network_of(arch)
            profile = self.profile
            if self.quantized is None:
                result = self.evaluator(arch)
                value, spread, precision = (0.0, 0.0, "fp32") if drop else (result.top1, _stderr(result.top1, result.n),
                                                                              "fp32")
                if getattr(result, "cached", False) and not drop:
                    profile = f"{self.profile}+cached-{result.measured_at or 'unknown'}"
            else:
                q = self.quantized(arch)
                if q.collapsed:
                    warnings.warn(f"the {q.precision} accuracy of {q.arch_id} collapsed: {q.top1:.3f} against "
                                  f"{q.float_top1:.3f} float; it is kept as measured", RuntimeWarning, stacklevel=2)
                error = _stderr(q.top1, q.n)
                value = q.drop if drop else q.top1
                spread, precision = (math.sqrt(2) * error if drop else error), q.precision
                if q.agreement is None:  # the quantized top-1 came from quant_eval_cache.json
                    profile = f"{self.profile}+cached"
            return Metric(value=value, unit="fraction", source="measured", profile=profile, spread=spread,
                          precision=precision)

        return measure

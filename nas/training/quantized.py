"""Accuracy of a quantized subnet: real post-training quantization, measured with onnxruntime.

Contract: ``QuantizedEvaluator(checkpoint_evaluator, settings)`` evaluates archs of
``quantized(space)`` (``"<space>+q"``) for the checkpoint's supernet. For one arch: the network part
is extracted with BN recalibrated (as float evaluation does) → ONNX → onnxruntime
``quantize_static`` (QDQ, signed int8, the arch's weight granularity and activation scheme, the
blocks its policy keeps in ``fp32`` excluded by node name) calibrated on ``settings.samples``
training images in a seeded order → top-1 of the int8 model with onnxruntime on the validation
split, beside the float subnet's (the checkpoint evaluator's figure, same images and recalibration). An all-``fp32`` policy is the float network:
nothing is quantized. Quantized top-1s are cached next to the checkpoint (``quant_eval_cache.json``,
keyed by checkpoint hash, data and calibration settings, then ``arch_id``). A quantized model whose top-1 falls more than ``COLLAPSE_DROP`` below the
float one is reported ``collapsed`` (the figure is kept, not hidden).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas._results import ReportRecord
from search_spaces import ArchConfig, NASError, QuantizedSpace
from supernets.bn import has_batchnorm
from supernets.evaluate import EvalCache, EvalResult, recalibrated_subnet
from supernets.training.losses import resize_batch

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
COLLAPSE_DROP = 0.2
CACHE_NAME = "quant_eval_cache.json"
MIN_DROP_FIT = 4
DROP_COVERAGE = 0.9  # nominal coverage of a predicted drop's interval


class QuantizationError(NASError, ValueError):
    """A quantization setting or a quantized evaluation is unusable; the message says why."""


@dataclass(frozen=True)
class QuantSettings:
    """Post-training quantization settings: the calibration method and how many training images."""

    method: str = "minmax"
    samples: int = 256

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise QuantizationError(f"calibration method {self.method!r} is not one of {list(CALIBRATION_METHODS)}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or not 1 <= self.samples <= 100_000:
            raise QuantizationError(f"calibration samples must be an integer in 1..100000, got {self.samples!r}")

    @property
    def tag(self) -> str:
        return f"{self.method}-{self.samples}"


@dataclass(frozen=True)
class QuantizedResult(ReportRecord):
    """Float vs quantized top-1 of one subnet on the same validation images."""

    arch_id: str
    precision: str  # fp32 | int8 | mixed
    top1: float
    float_top1: float
    n: int
    agreement: float | None  # share of images where both models predict the same class (None: from the cache)
    max_logit_diff: float | None
    calibration: str
    collapsed: bool
    ptq_s: float

    @property
    def drop(self) -> float:
        return self.float_top1 - self.top1


def _cache_tag(data: str, settings: QuantSettings) -> str:
    """What a cached quantized top-1 depends on besides checkpoint and arch: data, calibration, the
    onnxruntime version and this CPU's instruction set (int8 kernels differ between VNNI and AVX2)."""
    import onnxruntime

    from kernels.quantize import cpu_isa

    return f"{data}/ptq-{settings.tag}/onnxruntime-{onnxruntime.__version__}/{cpu_isa()}"


class QuantizedEvaluator:
    """Quantized accuracy of subnets of one checkpoint (see the module docstring)."""

    def __init__(self, evaluator, space: QuantizedSpace, settings: QuantSettings | None = None) -> None:
        if not isinstance(space, QuantizedSpace):
            raise QuantizationError(f"space {space.name!r} has no quantization policy; use {space.name}+q")
        if space.base.name != evaluator.space.name:
            raise QuantizationError(f"space {space.name!r} does not quantize the checkpoint's space "
                                    f"{evaluator.space.name!r}")
        self.evaluator, self.space = evaluator, space
        self.settings = settings or QuantSettings()
        self._results: dict[str, QuantizedResult] = {}
        self._archs: dict[str, ArchConfig] = {}
        self._drop_fit: tuple | None = None  # (drops measured, predictor, interval half-width in sd)
        self.cache = EvalCache(checkpoint_hash=evaluator.checkpoint_hash, data=_cache_tag(evaluator.data_key, self.settings),
                               path=evaluator.cache.path.with_name(CACHE_NAME) if evaluator.cache.path else None)

    # ------------------------------------------------------------ predicted drop
    def predicted_drop(self, archs) -> list:
        """The drop of each arch predicted by a :class:`~predictors.quantization.QuantDropPredictor`
        refitted on every drop measured so far in this process (cheap: no PTQ runs). With fewer
        than ``MIN_DROP_FIT`` measurements the prediction is 0 with an infinite spread and no interval:
        nothing is screened out before the predictor has data.

        Each figure carries an ``interval`` at ``coverage`` = ``DROP_COVERAGE``: ``mean ± h·sd``, where
        ``sd`` is the ensemble's spread and ``h`` the cross-conformal factor of the measured drops
        (each predicted by a model refitted without it: :func:`predictors.calibration.cross_val_scores`,
        leave-one-out up to 10 drops, then 10 folds; ``h`` = their ``⌈(n+1)·0.9⌉``-th smallest
        standardised error). Below 9 measured drops that rank does not exist: no interval then,
        rather than an uncalibrated one."""
        from hw_profiles import Metric
        from predictors.quantization import drop_features

        archs = [self.space.validate(a) for a in archs]
        model, half = self._drop_model()
        mean, var = model.predict_dist(drop_features(self.space, archs))
        n = len(self._results)
        metrics = []
        for a, m, v in zip(archs, mean, var):
            sd = float(np.sqrt(v)) if np.isfinite(v) else None
            interval = None if sd is None or half is None else (float(m) - half * sd, float(m) + half * sd)
            metrics.append(Metric(value=float(m), unit="fraction", source="predicted", profile=f"ptq-drop@{n}",
                                  spread=sd, precision=self.space.policy(a).label, interval=interval,
                                  coverage=None if interval is None else DROP_COVERAGE))
        return metrics

    def _drop_model(self):
        """``(predictor, h)`` fitted on the drops measured so far (cached until another is measured);
        see :meth:`predicted_drop`."""
        from predictors.calibration import conformal_quantile, cross_val_scores
        from predictors.quantization import QuantDropPredictor, drop_features

        measured = list(self._results.values())
        if self._drop_fit is not None and self._drop_fit[0] == len(measured):
            return self._drop_fit[1:]
        model, half = QuantDropPredictor(seed=0), None
        if len(measured) >= MIN_DROP_FIT:
            X = drop_features(self.space, [self._archs[r.arch_id] for r in measured])
            y = np.array([r.drop for r in measured])
            model.fit(X, y)
            half = conformal_quantile(cross_val_scores(lambda: QuantDropPredictor(seed=0), X, y), DROP_COVERAGE)
        self._drop_fit = (len(measured), model, half)
        return model, half

    # --------------------------------------------------------------------- data
    def calibration_images(self, resolution: int) -> np.ndarray:
        """``settings.samples`` training images (seeded order, not augmented) at ``resolution``."""
        ev = self.evaluator
        chunks, count = [], 0
        for images, _ in ev.source.calib_batches(batch_size=ev.config.batch_size, seed=ev.config.seed):
            chunks.append(resize_batch(images, resolution).numpy())
            count += len(images)
            if count >= self.settings.samples:
                break
        if not chunks:
            raise QuantizationError("the calibration set is empty: the training split has no images")
        return np.concatenate(chunks)[: self.settings.samples].astype(np.float32)

    def validation_images(self, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        """The validation split at ``resolution`` (float32 images, labels), in its fixed order."""
        return self.evaluator.validation_arrays(resolution)

    def float_subnet(self, arch: ArchConfig) -> torch.nn.Module:
        """The network part of ``arch``, BN recalibrated, on the CPU (what gets quantized)."""
        ev = self.evaluator
        net = self.space.network(arch)
        calib = ev.source.calib_batches(batch_size=ev.config.batch_size, seed=ev.config.seed)
        return recalibrated_subnet(ev.supernet, net, calib, ev.config.calib_batches).cpu()

    # ---------------------------------------------------------------- quantizing
    def quantize(self, arch: ArchConfig, out_path: Path, module: torch.nn.Module | None = None):
        """Write the QDQ ONNX model of ``arch`` to ``out_path``; the ``kernels.quantize.QuantizedOnnx``."""
        from kernels.quantize import quantize_module
        from nas.profiling.builds import recipe_for

        arch = self.space.validate(arch)
        module = module if module is not None else self.float_subnet(arch)
        recipe = recipe_for(self.evaluator.supernet, self.space.network(arch), self.space.policy(arch),
                            self.settings.method)
        shape = (1, *self.space.input_shape(arch))
        calibration = self.calibration_images(shape[-1])
        return quantize_module(module, torch.zeros(shape), out_path, calibration, recipe)

    def __call__(self, arch_obj) -> QuantizedResult:
        arch = self.space.parse(arch_obj) if not isinstance(arch_obj, ArchConfig) else self.space.validate(arch_obj)
        if arch.arch_id in self._results:
            return self._results[arch.arch_id]
        float_top1 = self.evaluator(self.space.network(arch)).top1  # cached by the float evaluator
        cached = self.cache.get(arch.arch_id)
        if cached is not None:
            result = self._result(arch, cached.top1, float_top1, cached.n, None, None, 0.0)
        else:
            result = self._evaluate(arch, float_top1)
        self._results[arch.arch_id] = result
        self._archs[arch.arch_id] = arch
        return result

    def _evaluate(self, arch: ArchConfig, float_top1: float) -> QuantizedResult:
        from kernels.quantize import run_batches

        policy = self.space.policy(arch)
        module = self.float_subnet(arch)
        images, labels = self.validation_images(self.space.input_shape(arch)[-1])
        with torch.inference_mode():
            float_logits = torch.cat([module(torch.from_numpy(images[i:i + 256])) for i in
                                      range(0, len(images), 256)]).numpy()
        if policy.label == "fp32":
            logits, seconds = float_logits, 0.0
        else:
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="hwnas-ptq-") as tmp:
                quantized = self.quantize(arch, Path(tmp) / "model.int8.onnx", module)
                logits = run_batches(quantized.path, images, batch_size=256)
            seconds = time.perf_counter() - start
        if not np.isfinite(logits).all():
            raise QuantizationError(f"the quantized model of {arch.arch_id} gave non-finite logits")
        top1 = float((logits.argmax(1) == labels).mean())
        loss = float(torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
        self.cache.put(arch.arch_id, EvalResult(top1=top1, loss=loss, n=len(labels),
                                                bn_recalibrated=has_batchnorm(self.evaluator.supernet)))
        agreement = float((logits.argmax(1) == float_logits.argmax(1)).mean())
        diff = float(np.abs(logits - float_logits).max())
        return self._result(arch, top1, float_top1, len(labels), agreement, diff, seconds)

    def _result(self, arch, top1, float_top1, n, agreement, diff, seconds) -> QuantizedResult:
        return QuantizedResult(
            arch_id=arch.arch_id, precision=self.space.policy(arch).label, top1=top1, float_top1=float_top1, n=n,
            agreement=agreement, max_logit_diff=diff, calibration=self.settings.tag,
            collapsed=float_top1 - top1 > COLLAPSE_DROP, ptq_s=round(seconds, 3))

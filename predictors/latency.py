"""Latency predictors for a new device, sklearn-style (``fit(X, y)`` → self, ``predict(X)`` → array).

* :class:`KernelLevelPredictor` (nn-Meter's idea): every distinct layer workload is measured once on
  the device (``layer_latency_ms``, keyed by ``LayerSpec.workload``); a network's latency is
  ``a · Σ (layer latency - f) + b · n_layers + c``, with ``a, b, c ≥ 0`` fitted on measured networks
  and ``f`` the table's cheapest layer (``overhead_floor_ms``). ``b`` and ``c`` absorb per-call and
  per-network overheads that standalone layers do not see; ``f`` lets the fit take out the call
  overhead every standalone layer pays and the whole network does not, up to the cheapest layer's
  time (so a prediction is never negative). Measured on tiny_vit with onnxruntime, 2 threads, this
  2-core host's ``host-cpu@1`` profile (rows of 9-55 µs standalone, the floor ~9 µs of call
  overhead), the ViT quick start's 100 subnets: held-out within ±10% went from 30% (``f = 0``) to 100%.
  A model saved without ``overhead_floor_ms`` (before this) keeps ``f = 0``.
  ``X`` is a sequence of layer tables.
* :class:`ArchLevelPredictor`: ridge regression on a numeric feature matrix (e.g.
  :func:`predictors.features.arch_features`: encoding + layer aggregates). ``X`` is ``(n, d)``.

Both fit relative error (each row weighted by ``1 / y``), since "within ±10%" is what users read,
and both round-trip through ``to_dict``/``from_dict`` (plain JSON; never pickle).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import nnls

from predictors._blas import one_blas_thread
from predictors.errors import NotFittedError  # noqa: F401  (defined here first; re-exported for compatibility)
from search_spaces import LayerSpec, NASError


class UnknownLayerError(NASError, KeyError):
    """A layer workload is missing from the kernel-level latency table."""


def _targets(y, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.size != n:
        raise ValueError(f"X has {n} rows but y has {y.size} values")
    if n == 0 or not np.isfinite(y).all() or (y <= 0).any():
        raise ValueError("y must be a non-empty array of positive, finite latencies")
    return y


class KernelLevelPredictor:
    """Sum of per-workload latencies plus a fitted overhead (see the module docstring)."""

    def __init__(self, *, layer_latency_ms: Mapping[LayerSpec, float]) -> None:
        table = {}
        for spec, ms in dict(layer_latency_ms).items():
            if not isinstance(spec, LayerSpec):
                raise ValueError(f"layer_latency_ms keys must be LayerSpec, got {type(spec).__name__}")
            if not np.isfinite(ms) or ms < 0:
                raise ValueError(f"layer latency must be a finite number >= 0, got {ms!r} for {spec}")
            table[spec.workload] = float(ms)
        if not table:
            raise ValueError("layer_latency_ms is empty: measure the layer workloads first")
        self.layer_latency_ms = table
        self.overhead_floor_ms = min(table.values())
        self.coef_: np.ndarray | None = None  # (a, b, c)

    def missing(self, X: Sequence[Sequence[LayerSpec]]) -> list[LayerSpec]:
        """Workloads of ``X`` that the table lacks, in first-seen order."""
        seen: dict[LayerSpec, None] = {}
        for layers in X:
            for layer in layers:
                if layer.workload not in self.layer_latency_ms:
                    seen.setdefault(layer.workload)
        return list(seen)

    def _design(self, X: Sequence[Sequence[LayerSpec]]) -> np.ndarray:
        rows = []
        table = self.layer_latency_ms
        for layers in X:
            try:
                total = sum(table[layer.workload] for layer in layers)
            except KeyError:
                gaps = self.missing([layers])
                raise UnknownLayerError(
                    f"{len(gaps)} layer workload(s) are not in the latency table, e.g. {gaps[0]}; "
                    "measure them first (a larger `nas profile --coverage`)") from None
            rows.append((total - self.overhead_floor_ms * len(layers), len(layers), 1.0))
        if not rows:
            raise ValueError("X is empty: give at least one layer table")
        return np.asarray(rows)

    def sum_ms(self, X: Sequence[Sequence[LayerSpec]]) -> np.ndarray:
        """The bare sum of table latencies per network (no fitted overhead, no floor taken out)."""
        design = self._design(X)
        return design[:, 0] + self.overhead_floor_ms * design[:, 1]

    def fit(self, X: Sequence[Sequence[LayerSpec]], y) -> "KernelLevelPredictor":
        A = self._design(X)
        y = _targets(y, len(A))
        self.coef_, _ = nnls(A / y[:, None], np.ones_like(y))
        return self

    def predict(self, X: Sequence[Sequence[LayerSpec]]) -> np.ndarray:
        if self.coef_ is None:
            raise NotFittedError("KernelLevelPredictor.predict called before fit")
        return self._design(X) @ self.coef_

    def to_dict(self) -> dict:
        return {"kind": "kernel_level", "coef": None if self.coef_ is None else self.coef_.tolist(),
                "overhead_floor_ms": self.overhead_floor_ms,
                "layers": [{**spec.to_dict(), "latency_ms": ms} for spec, ms in self.layer_latency_ms.items()]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "KernelLevelPredictor":
        table = {}
        for row in data["layers"]:
            fields = {k: v for k, v in row.items() if k not in ("latency_ms", "out_hw", "se")}
            fields["in_hw"] = tuple(fields["in_hw"])
            table[LayerSpec(**fields)] = float(row["latency_ms"])
        model = cls(layer_latency_ms=table)
        floor = data.get("overhead_floor_ms", 0.0)  # absent: a file from before the floor (f = 0)
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= min(table.values()):
            raise ValueError(f"overhead_floor_ms must be a number in [0, the cheapest layer's latency], got {floor!r:.40}")
        model.overhead_floor_ms = float(floor)
        if data.get("coef") is not None:
            model.coef_ = np.asarray(data["coef"], dtype=np.float64)
            if model.coef_.shape != (3,) or not np.isfinite(model.coef_).all():
                raise ValueError(f"coef must be 3 finite numbers (a, b, c), got {data['coef']!r:.80}")
        return model


class ArchLevelPredictor:
    """Relative-error ridge regression on standardised features. ``alpha`` ≥ 0 is the L2 weight;
    ``None`` (the default) picks it from ``ALPHAS`` by 5-fold cross-validation on the fit data."""

    ALPHAS = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)

    def __init__(self, *, alpha: float | None = None) -> None:
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))
                                  or not np.isfinite(alpha) or alpha < 0):
            raise ValueError(f"alpha must be None or a finite number >= 0, got {alpha!r}")
        self.alpha = None if alpha is None else float(alpha)
        self.alpha_: float | None = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0

    @staticmethod
    def _matrix(X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0 or not np.isfinite(X).all():
            raise ValueError(f"X must be a finite 2-D array with at least one row, got shape {X.shape}")
        return X

    @staticmethod
    def _solve(Z: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
        """Minimise Σ((Z w - y) / y)² + alpha · |w[:-1]|² (the last column, the intercept, is free)."""
        d = Z.shape[1]
        penalty = np.sqrt(alpha) * np.eye(d)[:-1]
        solution, *_ = np.linalg.lstsq(np.vstack([Z / y[:, None], penalty]),
                                       np.concatenate([np.ones_like(y), np.zeros(d - 1)]), rcond=None)
        return solution

    def _cv_alpha(self, Z: np.ndarray, y: np.ndarray) -> float:
        folds = np.arange(len(y)) % 5
        errors = []
        for alpha in self.ALPHAS:
            sq = 0.0
            for k in range(5):
                train, test = folds != k, folds == k
                if not test.any() or train.sum() < 2:
                    continue
                w = self._solve(Z[train], y[train], alpha)
                sq += float(np.sum(((Z[test] @ w - y[test]) / y[test]) ** 2))
            errors.append(sq)
        return self.ALPHAS[int(np.argmin(errors))]

    def fit(self, X, y) -> "ArchLevelPredictor":
        X = self._matrix(X)
        y = _targets(y, X.shape[0])
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Z = np.hstack([(X - self.mean_) / self.scale_, np.ones((X.shape[0], 1))])
        unit = float(np.median(y))  # fit y / unit, so that alpha does not depend on the latency's scale
        with one_blas_thread():  # 36 small least-squares solves: threaded BLAS only contends
            self.alpha_ = self.alpha if self.alpha is not None else self._cv_alpha(Z, y / unit)
            solution = self._solve(Z, y / unit, self.alpha_) * unit
        self.coef_, self.intercept_ = solution[:-1], float(solution[-1])
        return self

    def predict(self, X) -> np.ndarray:
        if self.coef_ is None:
            raise NotFittedError("ArchLevelPredictor.predict called before fit")
        X = self._matrix(X)
        if X.shape[1] != self.coef_.size:
            raise ValueError(f"X has {X.shape[1]} features but the predictor was fitted on {self.coef_.size}")
        return (X - self.mean_) / self.scale_ @ self.coef_ + self.intercept_

    def to_dict(self) -> dict:
        fitted = self.coef_ is not None
        return {"kind": "arch_level", "alpha": self.alpha, "alpha_fitted": self.alpha_,
                "mean": self.mean_.tolist() if fitted else None, "scale": self.scale_.tolist() if fitted else None,
                "coef": self.coef_.tolist() if fitted else None, "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, data: Mapping) -> "ArchLevelPredictor":
        model = cls(alpha=data["alpha"])
        model.alpha_ = data.get("alpha_fitted")
        if data.get("coef") is not None:
            model.mean_, model.scale_, model.coef_ = (np.asarray(data[k], dtype=np.float64)
                                                      for k in ("mean", "scale", "coef"))
            model.intercept_ = float(data["intercept"])
            arrays = (model.mean_, model.scale_, model.coef_)
            if (model.coef_.ndim != 1 or model.coef_.size == 0 or any(a.shape != model.coef_.shape for a in arrays)
                    or not all(np.isfinite(a).all() for a in arrays) or (model.scale_ <= 0).any()
                    or not np.isfinite(model.intercept_)):
                raise ValueError("mean, scale and coef must be finite vectors of one length (scale > 0) and the "
                                 f"intercept finite, got shapes {[a.shape for a in arrays]}")
        return model


class MacsProxyPredictor:
    """The baseline: latency ``= a · MACs + b`` (``a, b ≥ 0``, relative error). ``X`` is ``(n,)`` MACs."""

    def __init__(self) -> None:
        self.coef_: np.ndarray | None = None

    @staticmethod
    def _design(X) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64).ravel()
        if x.size == 0 or not np.isfinite(x).all():
            raise ValueError("X must be a non-empty array of finite MAC counts")
        return np.column_stack([x, np.ones_like(x)])

    def fit(self, X, y) -> "MacsProxyPredictor":
        A = self._design(X)
        y = _targets(y, len(A))
        self.coef_, _ = nnls(A / y[:, None], np.ones_like(y))
        return self

    def predict(self, X) -> np.ndarray:
        if self.coef_ is None:
            raise NotFittedError("MacsProxyPredictor.predict called before fit")
        return self._design(X) @ self.coef_

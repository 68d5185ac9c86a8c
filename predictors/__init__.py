"""Accuracy and latency predictors (sklearn-style ``fit``/``predict``) and their metrics.

Names are loaded lazily on first access, so ``import predictors`` stays light (no scikit-learn or
scipy until a predictor is used).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AccuracyEnsemble": "accuracy", "selection_score": "accuracy",
    "ArchLevelPredictor": "latency", "KernelLevelPredictor": "latency", "MacsProxyPredictor": "latency",
    "UnknownLayerError": "latency",
    "NotFittedError": "errors",
    "arch_features": "features", "layer_aggregates": "features", "one_hot": "features", "one_hot_codes": "features",
    "kendall_tau": "metrics", "regression_report": "metrics", "rmse": "metrics", "spearman": "metrics",
    "within_pct": "metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'predictors' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"predictors.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

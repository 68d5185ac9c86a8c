"""A cheap predictor of the accuracy a quantization policy costs, fitted on measured PTQ drops.

Features (:func:`drop_features`, fixed layout per space): per block label of the space, the share
of the network's MACs that the block computes in int8 (0 when it is fp32 or switched off); then the
total int8 MAC share, and that share times ``per_tensor`` weights and times ``symmetric``
activations. A float network has all zeros, and so predicts no drop.

:class:`QuantDropPredictor` is sklearn-style: ``fit(X, y)`` on measured drops (float top-1 minus
quantized top-1) → self; ``predict_dist(X)`` → ``(mean, var)``. It is a bootstrap ensemble of
non-negative ridge regressions without intercept (scipy's exact ``nnls`` on the rows stacked with
``sqrt(alpha)·I``; sklearn's ``Ridge(positive=True)`` stopped early on drops of a few points): the drop of a policy is a sum of non-negative per-block sensitivities
weighted by their int8 MAC shares, which a handful of measurements already constrains, and the
float network is pinned to zero drop. The variance is the spread of the members, floored at
``1e-8``. Before ``fit`` it predicts 0 with an infinite variance (unknown). Persistence is plain
JSON (``to_dict``/``from_dict``): each member is its coefficient vector.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from predictors.errors import NotFittedError
from predictors.features import layer_macs
from search_spaces import ArchConfig, SearchSpace

FORMAT = 1


def drop_features(space: SearchSpace, archs: Sequence[ArchConfig]) -> np.ndarray:
    """``(n, len(space.block_labels()) + 3)`` features of quantized archs (see the module docstring)."""
    labels = list(space.block_labels())
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(archs), len(labels) + 3))
    for n, arch in enumerate(archs):
        rows = space.layers(arch)
        total = float(sum(layer_macs(r) for r in rows)) or 1.0
        for row in rows:
            if row.precision == "int8":
                out[n, index[row.block]] += layer_macs(row) / total
        share = out[n, : len(labels)].sum()
        out[n, len(labels)] = share
        out[n, len(labels) + 1] = share * (arch["q_weights"] == "per_tensor")
        out[n, len(labels) + 2] = share * (arch["q_activations"] == "symmetric")
    return out


class QuantDropPredictor:
    """Bootstrap ensemble of non-negative ridge regressions on :func:`drop_features` rows."""

    def __init__(self, *, seed: int = 0, n_members: int = 8, alpha: float = 1e-6) -> None:
        if isinstance(n_members, bool) or not isinstance(n_members, int) or n_members < 1:
            raise ValueError(f"n_members must be an integer >= 1, got {n_members!r}")
        if not (isinstance(alpha, (int, float)) and np.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
        self.seed, self.n_members, self.alpha = int(seed), n_members, float(alpha)
        self.coefs_: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self.coefs_ is not None

    def fit(self, X, y) -> "QuantDropPredictor":
        from scipy.optimize import nnls

        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64).ravel()
        if X.ndim != 2 or len(X) != len(y) or len(y) < 2:
            raise ValueError(f"fit needs a 2-D X and y with the same >= 2 rows, got {X.shape} and {y.shape}")
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ValueError("fit got non-finite features or drops")
        rng = np.random.default_rng(self.seed)
        coefs = []
        for _ in range(self.n_members):
            rows = rng.integers(len(y), size=len(y))
            A = np.vstack([X[rows], np.sqrt(self.alpha) * np.eye(X.shape[1])])  # ridge as extra rows
            coefs.append(nnls(A, np.concatenate([y[rows], np.zeros(X.shape[1])]))[0])
        self.coefs_ = np.array(coefs)
        return self

    def predict_dist(self, X) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        if not self.fitted:
            return np.zeros(len(X)), np.full(len(X), np.inf)
        if X.ndim != 2 or X.shape[1] != self.coefs_.shape[1]:
            raise ValueError(f"expected {self.coefs_.shape[1]} features per row, got shape {X.shape}")
        members = X @ self.coefs_.T
        return members.mean(axis=1), np.maximum(members.var(axis=1), 1e-8)

    def predict(self, X) -> np.ndarray:
        return self.predict_dist(X)[0]

    def to_dict(self) -> dict:
        if not self.fitted:
            raise NotFittedError("QuantDropPredictor is not fitted")
        return {"format": FORMAT, "kind": "quant_drop", "seed": self.seed, "n_members": self.n_members,
                "alpha": self.alpha, "coefs": self.coefs_.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping) -> "QuantDropPredictor":
        if not isinstance(data, Mapping) or data.get("kind") != "quant_drop" or data.get("format") != FORMAT:
            raise ValueError("not a quantization-drop predictor of format 1")
        model = cls(seed=int(data["seed"]), n_members=int(data["n_members"]), alpha=float(data["alpha"]))
        coefs = np.asarray(data["coefs"], dtype=np.float64)
        if coefs.ndim != 2 or len(coefs) != model.n_members or not np.isfinite(coefs).all() or (coefs < 0).any():
            raise ValueError("quantization-drop predictor: coefs must be a finite non-negative n_members x d matrix")
        model.coefs_ = coefs
        return model

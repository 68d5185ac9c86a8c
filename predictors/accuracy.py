"""Accuracy predictor for predictor-in-the-loop search (LINAS-style, as in DyNAS-T).

:class:`AccuracyEnsemble` is sklearn-style: ``fit(X, y)`` → self, ``predict(X)`` → mean and
``predict_dist(X)`` → ``(mean, var)``. ``X`` is a 2-D float feature matrix (rows of
:func:`predictors.features.one_hot` or :func:`predictors.features.arch_features`), ``y`` the
measured accuracies (any finite floats; usually in [0, 1]).

Members
    * ``n_members`` small MLPs (sklearn ``MLPRegressor``, ReLU, L-BFGS, L2 weight ``alpha``), each
      fitted with its own seed on its own bootstrap resample of the rows;
    * one gradient-boosted tree ensemble (sklearn ``GradientBoostingRegressor``, ``n_trees``
      depth-``tree_depth`` trees, row subsampling), fitted on all rows; ``n_trees=0`` leaves it out.

    Inputs are standardised with the training mean and standard deviation (constant columns keep
    scale 1), targets too. The mean is the plain average of the members; the variance is the
    spread across members (population variance: epistemic uncertainty, not noise), floored at
    ``(1e-6 · std(y))²`` so that it is always positive. MLPs extrapolate linearly with different
    slopes while trees stay flat, so the spread grows away from the training data.

Persistence (never pickle)
    Every member's fitted parameters are plain arrays: an MLP is its weight matrices and bias
    vectors, a tree is its split features, thresholds and leaf values laid out as a complete binary
    tree (heap order), read from public attributes of the fitted sklearn estimators (``coefs_``,
    ``intercepts_``, ``estimators_[i].tree_``, ``init_``). ``fit`` copies them out and drops the
    sklearn objects, and ``predict`` evaluates them with numpy alone, so
    ``from_dict(to_dict())`` (plain JSON) predicts bit-for-bit what the fitted model predicts and
    a loaded model needs no refit. The trees compare ``float32(x) <= threshold`` as sklearn does.

Fitting is deterministic for a fixed ``seed`` (all randomness comes from one
``numpy.random.Generator`` seeded with it); different seeds give different members.
"""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np

from predictors._blas import one_blas_thread as _one_blas_thread
from predictors.errors import NotFittedError

FORMAT = 1
_CHUNK = 8192  # rows per block in predict
_MAX_TREE_DEPTH = 8  # a tree is stored as 2**depth leaves


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value, *, positive: bool = False) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not np.isfinite(value) or value < 0 or (positive and value == 0)):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _matrix(X, n_features: int | None = None) -> np.ndarray:
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must be a 2-D array of numbers: {exc}") from None
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a 2-D array with at least one row and column, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X must be finite (no NaN or inf)")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features but the predictor was fitted on {n_features}")
    return X


# --- members as plain arrays -------------------------------------------------------------------

def _mlp_params(mlp) -> dict:
    """A fitted ``MLPRegressor`` (ReLU hidden layers, identity output) as plain arrays."""
    if mlp.activation != "relu" or mlp.out_activation_ != "identity":
        raise ValueError(f"only ReLU/identity MLPs are supported, got {mlp.activation}/{mlp.out_activation_}")
    return {"coefs": [np.array(w, dtype=np.float64) for w in mlp.coefs_],
            "intercepts": [np.array(b, dtype=np.float64) for b in mlp.intercepts_]}


def _mlp_forward(params: dict, Z: np.ndarray) -> np.ndarray:
    h = Z
    last = len(params["coefs"]) - 1
    for i, (w, b) in enumerate(zip(params["coefs"], params["intercepts"])):
        h = h @ w + b
        if i < last:
            np.maximum(h, 0.0, out=h)
    return h[:, 0]


def _trees_params(gbm) -> dict:
    """A fitted single-output ``GradientBoostingRegressor`` as complete binary trees in heap order.

    Every tree becomes ``2**depth - 1`` split nodes (node ``i`` has children ``2i+1``, left, and
    ``2i+2``) and ``2**depth`` leaves. A leaf that sklearn placed above the last level becomes
    splits that always go left (threshold = the largest float) over copies of its value. The
    learning rate is folded into the leaf values.
    """
    depth = max(1, max(est.tree_.max_depth for est in gbm.estimators_[:, 0]))
    n_split, n_leaf = 2 ** depth - 1, 2 ** depth
    n_trees = gbm.estimators_.shape[0]
    feature = np.zeros((n_trees, n_split), dtype=np.int64)
    threshold = np.full((n_trees, n_split), np.finfo(np.float64).max)
    value = np.zeros((n_trees, n_leaf))
    for t, est in enumerate(gbm.estimators_[:, 0]):
        tree = est.tree_
        stack = [(0, 0, 0)]  # (sklearn node, heap position, level)
        while stack:
            node, pos, level = stack.pop()
            if level == depth:
                value[t, pos - n_split] = gbm.learning_rate * tree.value[node, 0, 0]
            elif tree.children_left[node] < 0:  # an early leaf: descend left and right unchanged
                stack += [(node, 2 * pos + 1, level + 1), (node, 2 * pos + 2, level + 1)]
            else:
                feature[t, pos], threshold[t, pos] = tree.feature[node], tree.threshold[node]
                stack += [(tree.children_left[node], 2 * pos + 1, level + 1),
                          (tree.children_right[node], 2 * pos + 2, level + 1)]
    return {"n_trees": int(n_trees), "depth": int(depth), "baseline": float(np.ravel(gbm.init_.constant_)[0]),
            "feature": feature, "threshold": threshold, "value": value}


def _trees_forward(params: dict, Z: np.ndarray) -> np.ndarray:
    """Sum of the trees' leaf values plus the baseline; sklearn splits ``float32(x) <= threshold``."""
    n_trees, depth = params["n_trees"], params["depth"]
    rows = max(1, 2 ** 22 // (n_trees * (2 ** depth - 1)))  # ~32 MB of split inputs at a time
    if len(Z) > rows:
        return np.concatenate([_trees_forward(params, Z[i:i + rows]) for i in range(0, len(Z), rows)])
    Zf = Z.astype(np.float32).astype(np.float64)
    go_left = (Zf[:, params["feature"].ravel()] <= params["threshold"].ravel()).reshape(len(Z), n_trees, -1)
    pos = np.zeros((len(Z), n_trees, 1), dtype=np.int64)
    for _ in range(depth):
        pos = 2 * pos + 2 - np.take_along_axis(go_left, pos, axis=2)
    leaf = pos[:, :, 0] - (2 ** depth - 1) + np.arange(n_trees) * 2 ** depth
    return params["baseline"] + params["value"].ravel()[leaf].sum(axis=1)


_TREE_ARRAYS = {"feature": np.int64, "threshold": np.float64, "value": np.float64}


class AccuracyEnsemble:
    """Bootstrap ensemble of small MLPs plus gradient-boosted trees (see the module docstring).

    ``seed`` seeds everything; ``n_members`` ≥ 1 MLPs with ``hidden_layer_sizes`` units, L2
    weight ``alpha`` and at most ``max_iter`` L-BFGS iterations; ``n_trees`` ≥ 0 boosting stages of
    depth ``tree_depth`` at ``learning_rate`` (0 trees: no boosting member).
    """

    def __init__(self, *, seed: int = 0, n_members: int = 5, hidden_layer_sizes: tuple[int, ...] = (64,),
                 alpha: float = 1.0, max_iter: int = 200, n_trees: int = 100, tree_depth: int = 3,
                 learning_rate: float = 0.1) -> None:
        self.seed = _check_int("seed", seed, 0)
        self.n_members = _check_int("n_members", n_members, 1)
        if (not isinstance(hidden_layer_sizes, (tuple, list)) or not hidden_layer_sizes
                or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden_layer_sizes)):
            raise ValueError(f"hidden_layer_sizes must be a non-empty tuple of integers >= 1, got {hidden_layer_sizes!r}")
        self.hidden_layer_sizes = tuple(int(h) for h in hidden_layer_sizes)
        self.alpha = _check_float("alpha", alpha)
        self.max_iter = _check_int("max_iter", max_iter, 1)
        self.n_trees = _check_int("n_trees", n_trees, 0)
        self.tree_depth = _check_int("tree_depth", tree_depth, 1)
        if self.tree_depth > _MAX_TREE_DEPTH:
            raise ValueError(f"tree_depth must be <= {_MAX_TREE_DEPTH}, got {tree_depth!r}")
        self.learning_rate = _check_float("learning_rate", learning_rate, positive=True)
        self._reset()

    def _reset(self) -> None:
        self.n_features_in_: int | None = None
        self.x_mean_: np.ndarray | None = None
        self.x_scale_: np.ndarray | None = None
        self.y_mean_: float = 0.0
        self.y_scale_: float = 1.0
        self.mlps_: list[dict] = []
        self.trees_: dict | None = None

    @property
    def fitted(self) -> bool:
        return self.n_features_in_ is not None

    @property
    def var_floor(self) -> float:
        """The smallest variance ``predict_dist`` reports, ``(1e-6 · std(y_train))²``."""
        return (1e-6 * self.y_scale_) ** 2

    def params(self) -> dict:
        """The constructor arguments (JSON-ready)."""
        return {"seed": self.seed, "n_members": self.n_members, "hidden_layer_sizes": list(self.hidden_layer_sizes),
                "alpha": self.alpha, "max_iter": self.max_iter, "n_trees": self.n_trees,
                "tree_depth": self.tree_depth, "learning_rate": self.learning_rate}

    # --- fit / predict ---------------------------------------------------------------------------

    def fit(self, X, y) -> "AccuracyEnsemble":
        from sklearn.ensemble import GradientBoostingRegressor
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        X = _matrix(X)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.size != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has shape {np.shape(y)}")
        if not np.isfinite(y).all():
            raise ValueError("y must be finite (no NaN or inf)")
        if X.shape[0] < 2:
            raise ValueError(f"fit needs at least 2 rows, got {X.shape[0]}")

        self._reset()
        x_mean, x_scale = X.mean(axis=0), X.std(axis=0)
        x_scale = np.where(x_scale > 0, x_scale, 1.0)
        y_mean, y_scale = float(y.mean()), float(y.std())
        y_scale = y_scale if y_scale > 0 else 1.0
        Z, t = (X - x_mean) / x_scale, (y - y_mean) / y_scale

        rng = np.random.default_rng(self.seed)
        n = X.shape[0]
        mlps = []
        # max_iter is a budget, not a failure: silence the ConvergenceWarning.
        with _one_blas_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(self.n_members):
                rows = rng.integers(0, n, size=n)
                mlp = MLPRegressor(hidden_layer_sizes=self.hidden_layer_sizes, solver="lbfgs", alpha=self.alpha,
                                   max_iter=self.max_iter, random_state=int(rng.integers(2**31 - 1)))
                mlps.append(_mlp_params(mlp.fit(Z[rows], t[rows])))
        trees = None
        if self.n_trees:
            gbm = GradientBoostingRegressor(n_estimators=self.n_trees, max_depth=self.tree_depth,
                                            learning_rate=self.learning_rate, subsample=0.8,
                                            random_state=int(rng.integers(2**31 - 1)))
            trees = _trees_params(gbm.fit(Z, t))

        self.x_mean_, self.x_scale_, self.y_mean_, self.y_scale_ = x_mean, x_scale, y_mean, y_scale
        self.mlps_, self.trees_ = mlps, trees
        self.n_features_in_ = X.shape[1]
        return self

    def member_predictions(self, X) -> np.ndarray:
        """``(n_members + (n_trees > 0), n)``: every member's prediction, in the units of ``y``."""
        if not self.fitted:
            raise NotFittedError("AccuracyEnsemble.predict called before fit")
        X = _matrix(X, self.n_features_in_)
        out = np.empty((len(self.mlps_) + (self.trees_ is not None), X.shape[0]))
        with _one_blas_thread():
            self._fill(X, out)
        return out * self.y_scale_ + self.y_mean_

    def _fill(self, X: np.ndarray, out: np.ndarray) -> None:
        for start in range(0, X.shape[0], _CHUNK):
            block = slice(start, start + _CHUNK)
            Z = (X[block] - self.x_mean_) / self.x_scale_
            for i, params in enumerate(self.mlps_):
                out[i, block] = _mlp_forward(params, Z)
            if self.trees_ is not None:
                out[-1, block] = _trees_forward(self.trees_, Z)

    def predict_dist(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, var)``, each ``(n,)``: the members' average and their spread (≥ ``var_floor``)."""
        members = self.member_predictions(X)
        return members.mean(axis=0), np.maximum(members.var(axis=0), self.var_floor)

    def predict(self, X) -> np.ndarray:
        return self.member_predictions(X).mean(axis=0)

    # --- persistence (plain JSON) ----------------------------------------------------------------

    def to_dict(self) -> dict:
        """Constructor arguments plus, once fitted, every fitted array as nested lists."""
        data = {"kind": "accuracy_ensemble", "format": FORMAT, **self.params(), "fitted": None}
        if self.fitted:
            data["fitted"] = {
                "n_features": self.n_features_in_, "x_mean": self.x_mean_.tolist(), "x_scale": self.x_scale_.tolist(),
                "y_mean": self.y_mean_, "y_scale": self.y_scale_,
                "mlps": [{k: [a.tolist() for a in v] for k, v in m.items()} for m in self.mlps_],
                "trees": None if self.trees_ is None else {
                    k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self.trees_.items()},
            }
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> "AccuracyEnsemble":
        if not isinstance(data, Mapping) or data.get("kind") != "accuracy_ensemble":
            kind = data.get("kind") if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"not an accuracy_ensemble dict (kind={kind!r})")
        if data.get("format") != FORMAT:
            raise ValueError(f"unsupported accuracy_ensemble format {data.get('format')!r}; this code reads {FORMAT}")
        model = cls(seed=data["seed"], n_members=data["n_members"],
                     hidden_layer_sizes=tuple(data["hidden_layer_sizes"]), alpha=data["alpha"],
                     max_iter=data["max_iter"], n_trees=data["n_trees"], tree_depth=data["tree_depth"],
                     learning_rate=data["learning_rate"])
        fitted = data.get("fitted")
        if fitted is None:
            return model
        d = int(fitted["n_features"])
        model.x_mean_ = np.asarray(fitted["x_mean"], dtype=np.float64)
        model.x_scale_ = np.asarray(fitted["x_scale"], dtype=np.float64)
        if model.x_mean_.shape != (d,) or model.x_scale_.shape != (d,):
            raise ValueError(f"x_mean/x_scale must have {d} entries")
        model.y_mean_, model.y_scale_ = float(fitted["y_mean"]), float(fitted["y_scale"])
        model.mlps_ = [{k: [np.asarray(a, dtype=np.float64) for a in m[k]] for k in ("coefs", "intercepts")}
                       for m in fitted["mlps"]]
        trees = fitted.get("trees")
        if trees is not None:
            trees = {k: np.asarray(v, dtype=_TREE_ARRAYS[k]) if k in _TREE_ARRAYS else v for k, v in trees.items()}
            trees["baseline"] = float(trees["baseline"])
            n_trees, depth = int(trees["n_trees"]), int(trees["depth"])
            shapes = {"feature": (n_trees, 2 ** depth - 1), "threshold": (n_trees, 2 ** depth - 1),
                      "value": (n_trees, 2 ** depth)}
            for key, shape in shapes.items():
                if trees[key].shape != shape:
                    raise ValueError(f"trees.{key} must have shape {shape}, got {trees[key].shape}")
            if trees["feature"].size and (trees["feature"].min() < 0 or trees["feature"].max() >= d):
                raise ValueError(f"trees.feature must index the {d} features")
        model.trees_ = trees
        model.n_features_in_ = d
        return model


def selection_score(mean, var, *, kappa: float) -> np.ndarray:
    """Upper confidence bound ``mean + kappa · sqrt(var)``: pick the candidates that maximise it.

    ``kappa`` ≥ 0 trades exploitation (0: the predicted mean alone) for exploration.
    """
    kappa = _check_float("kappa", kappa)
    m = np.asarray(mean, dtype=np.float64)
    v = np.asarray(var, dtype=np.float64)
    if m.shape != v.shape:
        raise ValueError(f"mean and var must have the same shape, got {m.shape} and {v.shape}")
    if not (np.isfinite(m).all() and np.isfinite(v).all()) or (v < 0).any():
        raise ValueError("mean must be finite and var finite and >= 0")
    return m + kappa * np.sqrt(v)

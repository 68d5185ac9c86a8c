"""Contract suites and helpers for checking your own searchers, supernets, cost models and predictors.

Like ``optuna.testing``: import a suite into your test module and parametrise it with your
implementation. Nothing in ``nas`` imports this package.
"""

from nas.testing._signal import enliven, perturb_constant_weights

__all__ = ["enliven", "perturb_constant_weights"]

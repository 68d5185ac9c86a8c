"""Contract suites and helpers for checking your own searchers, supernets, cost models and predictors.

Like ``optuna.testing``: each suite is a pytest class; subclass it in your test module and give it
a fixture that builds your implementation (see each module's docstring for a full example):

- :mod:`nas.testing.searchers`: ``SearcherContract`` (fixture ``searcher_factory``);
- :mod:`nas.testing.supernets`: ``SupernetContract`` (fixture ``supernet``);
- :mod:`nas.testing.cost_models`: ``CostModelContract`` and ``MeasuredCostModelContract``
  (fixture ``cost_model``);
- :mod:`nas.testing.predictors`: ``PredictorContract`` (fixtures ``predictor_factory``, ``dataset``).

The project's own tests (``tests/contracts/``) run them over every registered implementation.
Nothing in ``nas`` imports this package; the suites need pytest (and the supernet suite torch).
"""

from nas.testing._signal import enliven, perturb_constant_weights

try:  # the suites' plain asserts get pytest's detailed failure messages
    import pytest as _pytest
except ImportError:  # pragma: no cover - the helpers above work without pytest
    pass
else:
    _pytest.register_assert_rewrite(*(f"nas.testing.{m}" for m in ("cost_models", "predictors", "searchers",
                                                                     "supernets")))

__all__ = ["enliven", "perturb_constant_weights"]

"""Searchers: ask/tell search algorithms behind one small interface (see ``base.Searcher``).

>>> s = create_searcher("nsga2", space=space, n_objectives=2, n_constraints=1, seed=0)  # doctest: +SKIP
>>> history = run_ask_tell(s, evaluate, budget=300, batch_size=16)                   # doctest: +SKIP
>>> front = history.pareto_mask()                                                     # doctest: +SKIP

Registered: pymoo's ``nsga2``, ``nsga3``, ``smsemoa``, ``moead`` and, where numba
is installed, ``agemoea2``; optuna's ``tpe``, ``optuna-nsga2`` and, where optuna has it and
torch and scipy are installed, ``gp``; ``linas`` (predictor-guided; it uses the caller's
:class:`CheapObjectives` when offered one); and the ``random`` baseline. ``import
nas.searchers`` imports neither pymoo nor optuna; a searcher's adapter module loads on first
``create_searcher``. ``resolve_searcher("auto", expensive=...)`` picks the default by the job's
objectives: ``linas`` when one is expensive, ``nsga2`` when all are cheap (and in nested co-design).
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version

from nas.searchers.base import ENUMERATE_LIMIT, CheapObjectives, Evaluation, Searcher
from nas.searchers.errors import SearcherError, UnknownSearcherError
from nas.searchers.loop import History, Termination, feasible_mask, hypervolume, pareto_mask, run_ask_tell
from nas.searchers.random_searcher import RandomSearcher
from nas.searchers.registry import (
    AUTO_SEARCHER,
    DEFAULT_EXPENSIVE_SEARCHER,
    DEFAULT_SEARCHER,
    create_searcher,
    lazy_factory,
    list_searchers,
    register_searcher,
    resolve_searcher,
    searcher_uses_cheap,
)

_PYMOO = "nas.searchers.pymoo_searchers"
_OPTUNA = "nas.searchers.optuna_searchers"
_LINAS = "nas.searchers.predictor_guided"


def _gp_available() -> bool:
    """optuna's GPSampler exists from optuna 3.6 and needs torch and scipy; checked without importing them."""
    try:
        major, minor = (int(part) for part in version("optuna").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (3, 6) and all(importlib.util.find_spec(m) is not None for m in ("torch", "scipy"))


register_searcher("random", RandomSearcher)
register_searcher("nsga2", lazy_factory(_PYMOO, "NSGA2Searcher"))
register_searcher("nsga3", lazy_factory(_PYMOO, "NSGA3Searcher"))
if importlib.util.find_spec("numba") is not None:  # pymoo's AGE-MOEA-II is JIT-compiled with numba
    register_searcher("agemoea2", lazy_factory(_PYMOO, "AGEMOEA2Searcher"))
register_searcher("smsemoa", lazy_factory(_PYMOO, "SMSEMOASearcher"))
register_searcher("moead", lazy_factory(_PYMOO, "MOEADSearcher"))
register_searcher("tpe", lazy_factory(_OPTUNA, "TPESearcher"))
register_searcher("optuna-nsga2", lazy_factory(_OPTUNA, "OptunaNSGA2Searcher"))
if _gp_available():
    register_searcher("gp", lazy_factory(_OPTUNA, "GPSearcher"))
register_searcher("linas", lazy_factory(_LINAS, "PredictorGuidedSearcher"), uses_cheap=True)

__all__ = [
    "AUTO_SEARCHER", "DEFAULT_EXPENSIVE_SEARCHER", "DEFAULT_SEARCHER", "ENUMERATE_LIMIT", "CheapObjectives",
    "Evaluation", "History", "RandomSearcher", "Searcher", "SearcherError", "Termination", "UnknownSearcherError",
    "create_searcher", "feasible_mask", "hypervolume", "lazy_factory", "list_searchers", "pareto_mask",
    "register_searcher", "resolve_searcher", "run_ask_tell", "searcher_uses_cheap",
]

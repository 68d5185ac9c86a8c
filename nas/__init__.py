"""hwnas public API. Torch-backed parts (supernets) load on first use, so ``import nas`` is fast."""

from __future__ import annotations

import hw_profiles as _hw_profiles  # noqa: F401  (its template source resolves "<space>+hw(<device>)" names)
from search_spaces import (
    AcceleratorSpace,
    ArchConfig,
    Choice,
    InvalidArchError,
    LayerSpec,
    NASError,
    QuantizedSpace,
    QuantPolicy,
    SearchSpace,
    UnknownSpaceError,
    get_space,
    list_spaces,
    quantized,
    register_space,
)

_LAZY = {
    "create_supernet": "supernets",
    "list_supernets": "supernets",
    "register_supernet": "supernets",
    "recalibrate_bn": "supernets",
    "count_macs_params": "supernets",
    "Supernet": "supernets",
    "load_ofa_state_dict": "supernets",
    "load_data": "nas.data",
    "list_datasets": "nas.data",
    "DataSource": "nas.data",
    "DataError": "nas.data",
    "search": "nas.jobs.search",
    "Objective": "nas.jobs.objectives",
    "Constraint": "nas.jobs.objectives",
    "load_job": "nas.jobs.results",
    "SearchResult": "nas.jobs.results",
    "LatencyModel": "nas.profiling.latency_model",
    "AccuracyMetrics": "nas.jobs.accuracy",
    "QuantSettings": "nas.training.quantized",
    "load_subnet": "nas.export.subnet",
    "export_subnet": "nas.export.subnet",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


__all__ = [
    "AcceleratorSpace", "ArchConfig", "Choice", "InvalidArchError", "LayerSpec", "NASError", "QuantPolicy", "QuantizedSpace", "SearchSpace",
    "UnknownSpaceError", "get_space", "list_spaces", "quantized", "register_space", *_LAZY,
]

"""Every TVM module, and the only place ``tvm`` is imported (lazily, through ``_common._tvm``).

``build`` (ONNX → Relax, default CPU schedule, compile, load), ``schedule`` (that default schedule),
``db`` (the MetaSchedule JSON database, task extraction, compile from records), ``tune`` (tuning to a
wall-clock budget; state in ``_tune_state``), ``targets`` (CUDA, cross, C), ``measure`` and ``rpc``
(timing here or on a board over TVM RPC).
"""

"""Search jobs (DESIGN.md's "search" room; named ``jobs`` because ``nas.search()`` is a public function).

``objectives`` (Objective, Constraint, MetricCatalog), ``evaluator`` (cheap screening before expensive
evaluation), ``store`` (a job = an Optuna study; claims, heartbeats), ``records`` (TrialRecord: the one
place a stored trial is read), ``search`` (``nas.search()``: one ask/tell loop over the store),
``results`` (SearchResult, Pareto queries), ``worker`` (``nas worker``), ``config`` (search TOML),
``from_config`` and ``summary`` (what ``nas search`` and ``nas jobs`` run).
"""

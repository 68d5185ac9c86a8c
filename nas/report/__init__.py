"""What people read: ``describe`` (one arch on every device, with provenance), ``tables`` (the Pareto
front as text, for ``nas run``, ``nas search`` and ``nas pareto``), ``plots`` (the front as PNG)."""

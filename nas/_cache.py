"""Where hwnas keeps its caches (TVM tuning databases): one home, shared by every room."""

from __future__ import annotations

import os
from pathlib import Path

from search_spaces import SearchSpace


def cache_root() -> Path:
    """``$HWNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/hwnas``, else ``~/.cache/hwnas``."""
    if os.environ.get("HWNAS_CACHE_DIR"):
        return Path(os.environ["HWNAS_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "hwnas"
    return Path.home() / ".cache" / "hwnas"


def default_db_dir(profile, space: SearchSpace) -> Path:
    """The tuning database folder of (``profile``, ``space``) in the cache."""
    return cache_root() / "tvm-db" / profile.ref / f"{space.name}@{space.version}"

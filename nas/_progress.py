"""One progress bar style for long steps (``nas profile``, ``nas tune-space``): tqdm on stderr with an ETA."""

from __future__ import annotations


def progress_bar(total: int, *, desc: str, unit: str, enabled: bool):
    """A ``tqdm`` bar (a context manager) that stays on screen when done; a silent one unless ``enabled``."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True, leave=True)

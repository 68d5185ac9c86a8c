"""``random``: the baseline. Unseen uniform samples; told values are only used for dedup."""

from __future__ import annotations

from search_spaces import ArchConfig

from nas.searchers.base import Evaluation, Searcher


class RandomSearcher(Searcher):
    """Uniform samples over the integer codes (canonicalised), never repeating an ``arch_id``.

    Keyword-only constructor: ``space``, ``n_objectives``, ``n_constraints`` (default 0),
    ``seed``. It has no algorithm options.
    """

    name = "random"

    def _ask(self, n: int) -> list[ArchConfig]:
        return self._draw_unseen(n)

    def _tell(self, evaluations: list[Evaluation]) -> None:
        return None

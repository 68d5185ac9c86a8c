"""Errors raised by searchers and their registry."""

from __future__ import annotations

from search_spaces import NASError, UnknownNameError


class SearcherError(NASError, ValueError):
    """A searcher was used against its contract: a bad shape in ``tell``, an arch told twice,
    an arch told that was never asked. The message names the arch or the shape at fault."""


class UnknownSearcherError(UnknownNameError):
    """``create_searcher`` was given a name that is not registered; the message lists the names."""

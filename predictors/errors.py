"""Errors shared by the predictors (all derive from :class:`search_spaces.NASError`)."""

from __future__ import annotations

from search_spaces import NASError


class NotFittedError(NASError, RuntimeError):
    """``predict`` (or ``predict_dist``) was called before ``fit``."""

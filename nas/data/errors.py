"""The data-loading error."""

from __future__ import annotations

from search_spaces import NASError


class DataError(NASError, ValueError):
    """A dataset cannot be loaded: an unknown spec, a missing or corrupt path, a wrong layout.

    The message is one line naming the path and the layout that was expected there.
    """

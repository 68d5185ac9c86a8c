"""The project's one error base and the errors raised by search spaces.

Every error a user can cause derives from :class:`NASError` and from the builtin exception
that fits it, so ``except ValueError`` keeps working for callers that do not know hwnas.
The CLI turns a ``NASError`` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class NASError(Exception):
    """Base of every user-facing hwnas error. ``str(err)`` is one line that says what to fix."""

    def __str__(self) -> str:  # KeyError quotes its message; we want the plain text everywhere.
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidArchError(NASError, ValueError):
    """An architecture does not fit its search space (unknown key, bad value, wrong length)."""


class UnknownNameError(NASError, KeyError):
    """A registry lookup failed; the message lists the registered names."""


class UnknownSpaceError(UnknownNameError):
    """``get_space`` was given a name that is not registered."""


class DuplicateNameError(NASError, ValueError):
    """A registry already holds an entry with this name."""


class NoLayerIRError(NASError, NotImplementedError):
    """The space has no layer table (a user space built from bare choices)."""

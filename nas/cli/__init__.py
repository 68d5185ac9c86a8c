"""The ``nas`` command line: each command's parser beside its handler; parse, call one function, print."""

from nas.cli._main import main

__all__ = ["main"]

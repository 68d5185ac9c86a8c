"""The ``nas`` command line: one module per command, its parser beside its handler (``add_parser``,
``run``); each parses, calls one function of the rooms below and prints. ``_main`` assembles them."""

from nas.cli._main import build_parser, main

__all__ = ["build_parser", "main"]

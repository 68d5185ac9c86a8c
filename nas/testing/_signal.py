"""Helpers for checking models with real signal (used by tests and benchmarks)."""

from supernets.testing import enliven, perturb_constant_weights

__all__ = ["enliven", "perturb_constant_weights"]

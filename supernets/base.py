"""``Supernet``: the contract every weight-sharing supernet keeps.

Contract:
- ``space`` is the ``SearchSpace`` whose archs it runs; any arch that space validates works.
- Exactly one arch is *active* at a time. ``forward`` runs the active subnet. The active arch
  changes only through ``set_active`` or the ``active(arch)`` context (which restores the
  previous arch on exit, even on error). A new supernet starts with the largest arch active.
- ``extract(arch)`` returns a new static ``nn.Module`` with copied weights (no link back to
  the supernet, no elastic code) whose eval-mode output equals the supernet's with ``arch``
  active, and whose MACs/params equal ``space.layers(arch)``'s. It does not change the
  active arch. The returned module is in eval mode.
- The supernet does not resize inputs: feed tensors of ``input_shape(arch, batch)``.
- ``block_scopes(arch)`` maps each block label of ``space.layers(arch)`` to the dotted module
  paths of ``extract(arch)`` that compute it (every module with parameters lies under exactly one):
  how a per-block quantization policy finds the ops it keeps in float.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from search_spaces import ArchConfig, SearchSpace


class Supernet(nn.Module):
    """Base class; subclasses implement ``_activate`` and ``extract``."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self._active_arch: ArchConfig | None = None

    @property
    def active_arch(self) -> ArchConfig:
        if self._active_arch is None:
            raise RuntimeError(f"{type(self).__name__} has no active arch; its __init__ must call set_active")
        return self._active_arch

    def set_active(self, arch: ArchConfig) -> None:
        """Make ``arch`` (validated against ``space``) the subnet that ``forward`` runs."""
        arch = self.space.validate(arch)
        self._activate(arch)
        self._active_arch = arch

    @contextmanager
    def active(self, arch: ArchConfig) -> Iterator["Supernet"]:
        """Run the body with ``arch`` active, then restore the previous arch."""
        previous = self.active_arch
        self.set_active(arch)
        try:
            yield self
        finally:
            self.set_active(previous)

    def input_shape(self, arch: ArchConfig, batch: int = 1) -> tuple[int, int, int, int]:
        """``(batch, channels, height, width)`` of the input the subnet ``arch`` expects."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        return (batch, *self.space.input_shape(arch))

    def _activate(self, arch: ArchConfig) -> None:
        raise NotImplementedError

    def extract(self, arch: ArchConfig) -> nn.Module:
        raise NotImplementedError

    def block_scopes(self, arch: ArchConfig) -> dict[str, tuple[str, ...]]:
        raise NotImplementedError(f"{type(self).__name__} does not map block labels to module paths")

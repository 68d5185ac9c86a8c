"""``ComposedSpace``: a network space plus extra settings (a quantization policy, an accelerator).

A composed space keeps its base network space as ``base`` and maps each of its archs to the base
arch with ``network(arch)``; the network's facts (classes, input channels and shape, block labels)
are the base's, read through that map.
"""

from __future__ import annotations

from search_spaces.arch import ArchConfig
from search_spaces.space import SearchSpace


class ComposedSpace(SearchSpace):
    """Delegates the network's facts to ``self.base`` via ``self.network(arch)`` (set by subclasses)."""

    base: SearchSpace

    def network(self, arch: ArchConfig) -> ArchConfig:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    @property
    def in_channels(self) -> int:
        return self.base.in_channels

    def input_shape(self, arch: ArchConfig) -> tuple[int, int, int]:
        return self.base.input_shape(self.network(arch))

    def block_labels(self) -> tuple[str, ...]:
        return self.base.block_labels()

    def active_block_labels(self, arch: ArchConfig) -> frozenset[str]:
        return self.base.active_block_labels(self.network(arch))

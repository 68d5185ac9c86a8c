"""``ElasticFamily``: what a weight-sharing network family's space offers its supernet trainer.

Settings are named ``<dim>`` or ``<dim>_<i>``; options are in increasing order of size, so the
last option of every setting is the supernet's full network. Subclasses set ``ELASTIC_DIMS`` (the
dims progressive shrinking opens one at a time), ``SHRINK_STAGES`` (progressive shrinking's four
stages: ``(name, dims)`` pairs, each stage's dims a superset of the previous one's; a stage whose
only dim is the resolution ``r``, or none, trains the full network) and ``resolutions``, and define
``with_resolution``.
"""

from __future__ import annotations

from search_spaces.arch import ArchConfig
from search_spaces.space import SearchSpace


class ElasticFamily(SearchSpace):
    """A ``SearchSpace`` whose options grow with their index (see the module docstring)."""

    ELASTIC_DIMS: tuple[str, ...] = ()
    SHRINK_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = ()
    resolutions: tuple[int, ...] = ()

    def largest(self) -> ArchConfig:
        """Every setting at its maximum: the supernet's full network."""
        return self.decode(self.cardinalities - 1)

    def smallest(self) -> ArchConfig:
        """Every setting at its minimum."""
        return self.canonicalize(self.decode([0] * len(self.params)))

    def sample_elastic(self, rng, dims) -> ArchConfig:
        """A random canonical arch in which only the settings of ``dims`` (a subset of
        ``ELASTIC_DIMS``) vary; the rest are at their maximum. Progressive shrinking uses it to
        open one dimension at a time."""
        dims = set(dims)
        unknown = dims - set(self.ELASTIC_DIMS)
        if unknown:
            raise ValueError(f"unknown elastic dims {sorted(unknown)}; valid: {list(self.ELASTIC_DIMS)}")
        codes = self.encode(self.sample(rng))
        for i, p in enumerate(self.params):
            if p.name.split("_")[0] not in dims:
                codes[i] = len(p) - 1
        return self.canonicalize(self.decode(codes))

    def with_resolution(self, arch: ArchConfig, resolution: int) -> ArchConfig:
        """``arch`` with its input resolution replaced."""
        raise NotImplementedError

    def covering_archs(self, resolutions=None) -> list[ArchConfig]:
        """A few archs whose layer tables hold every distinct layer workload (``LayerSpec.workload``)
        the space can produce at ``resolutions`` (default: all of them): what a kernel-level latency
        table and a space-wide TVM tuning database must have measured."""
        raise NotImplementedError

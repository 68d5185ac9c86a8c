"""A quantization policy searched with the network: ``QuantizedSpace`` composes any network space.

``quantized(space)`` adds a hierarchical policy: ``q_all`` is one precision for every block
(``int8`` or ``fp32`` by default) or ``per_block``, in which case each block label of the base space
(``space.block_labels()``: stem, each block slot, head, classifier) has its own precision setting
``q_<label>``; then two global settings, ``q_weights`` (``per_channel`` or ``per_tensor`` weight
scales) and ``q_activations`` (``asymmetric`` or ``symmetric`` activation ranges). The arch is the
base arch's settings followed by these, so encoders, searchers and predictors see the policy like
any other choice, and ``arch_id`` covers it. Why the ``q_all`` level: uniform policies are what a
deployment usually wants (no format conversions between blocks), and with per-block bits alone a
random draw of 19 of them is almost never uniform; measured on tiny_mbv3, NSGA-II at 40
evaluations found no uniform policy and its front lost to float-search-then-int8.

Canonical form: the base space's rule; every ``q_<label>`` unless ``q_all`` is ``per_block``, and
then those of blocks the base arch switched off; the two scheme settings when every block is
``fp32`` (nothing is quantized, so they do not matter). The composed space is named ``<base>+q`` (default precisions) or
``<base>+q(int8,fp32,...)``; ``get_space`` resolves both, so a stored job rebuilds the same space.
A plain space (no policy) keeps its own ``arch_id``s: it is today's float32 network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from search_spaces._composed import ComposedSpace
from search_spaces.arch import ArchConfig, stable_hash
from search_spaces.choice import Choice
from search_spaces.errors import InvalidArchError
from search_spaces.layers import PRECISION_BITS, LayerSpec
from search_spaces.space import SearchSpace

DEFAULT_PRECISIONS = ("int8", "fp32")
WEIGHT_GRANULARITIES = ("per_channel", "per_tensor")
ACTIVATION_SCHEMES = ("asymmetric", "symmetric")
WEIGHTS_KEY, ACTIVATIONS_KEY, ALL_KEY = "q_weights", "q_activations", "q_all"
PER_BLOCK = "per_block"
SUFFIX = "+q"
_NAME = re.compile(r"^(?P<base>[^+]+)\+q(?:\((?P<precisions>[a-z0-9,]+)\))?$")


@dataclass(frozen=True)
class QuantPolicy:
    """The numeric format of one subnet: precision per block label, weight scale granularity and
    activation range scheme (the names ORT's ``quantize_static`` options take)."""

    precisions: Mapping[str, str]
    weight_granularity: str = "per_channel"
    activation_scheme: str = "asymmetric"

    @property
    def per_channel(self) -> bool:
        return self.weight_granularity == "per_channel"

    @property
    def activation_symmetric(self) -> bool:
        return self.activation_scheme == "symmetric"

    def blocks_in(self, precision: str) -> tuple[str, ...]:
        return tuple(label for label, p in self.precisions.items() if p == precision)

    @property
    def label(self) -> str:
        """``fp32``, ``int8`` or ``mixed``: the format a figure of this subnet belongs to."""
        kinds = set(self.precisions.values())
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def to_dict(self) -> dict:
        return {"precisions": dict(self.precisions), "weight_granularity": self.weight_granularity,
                "activation_scheme": self.activation_scheme, "format": self.label}

    @classmethod
    def uniform(cls, labels: Sequence[str], precision: str, **scheme) -> "QuantPolicy":
        """Every block in ``precision`` (e.g. the sequential baseline's all-int8 policy)."""
        if precision not in PRECISION_BITS:
            raise InvalidArchError(f"unknown precision {precision!r}; valid: {list(PRECISION_BITS)}")
        return cls({label: precision for label in labels}, **scheme)


class QuantizedSpace(ComposedSpace):
    """``base``'s settings followed by a quantization policy (see the module docstring)."""

    def __init__(self, base: SearchSpace, *, precisions: Sequence[str] = DEFAULT_PRECISIONS) -> None:
        if isinstance(base, QuantizedSpace):
            raise ValueError(f"space {base.name!r} already has a quantization policy")
        precisions = tuple(precisions)
        unknown = [p for p in precisions if p not in PRECISION_BITS]
        if unknown or not precisions:
            raise ValueError(f"precision choices {list(precisions)} must be a non-empty subset of "
                             f"{list(PRECISION_BITS)}")
        labels = base.block_labels()
        self.base = base
        self.precisions = precisions
        self.labels = labels
        self._n_base = len(base.params)
        uniform = (*precisions, PER_BLOCK) if len(precisions) > 1 else precisions
        params = [*base.params, Choice(ALL_KEY, uniform), *(Choice(f"q_{label}", precisions) for label in labels),
                  Choice(WEIGHTS_KEY, WEIGHT_GRANULARITIES), Choice(ACTIVATIONS_KEY, ACTIVATION_SCHEMES)]
        suffix = SUFFIX if precisions == DEFAULT_PRECISIONS else f"{SUFFIX}({','.join(precisions)})"
        super().__init__(base.name + suffix, params, version=base.version)

    # ------------------------------------------------------------------ the two halves
    def network(self, arch: ArchConfig) -> ArchConfig:
        """The base space's arch: what the supernet trains and extracts."""
        arch = self.validate(arch)
        return self.base.canonicalize(self.base._make([v for _, v in arch.items[: self._n_base]]))

    def policy(self, arch: ArchConfig) -> QuantPolicy:
        """The arch's quantization policy over the blocks its network runs."""
        arch = self.validate(arch)
        active = self.base.active_block_labels(self.network(arch))
        return QuantPolicy({label: self._precision(arch, label) for label in self.labels if label in active},
                           weight_granularity=arch[WEIGHTS_KEY], activation_scheme=arch[ACTIVATIONS_KEY])

    @staticmethod
    def _precision(arch: ArchConfig, label: str) -> str:
        uniform = arch[ALL_KEY]
        return arch[f"q_{label}"] if uniform == PER_BLOCK else uniform

    def combine(self, network: ArchConfig, policy: QuantPolicy) -> ArchConfig:
        """The arch of ``network`` (a base arch) quantized by ``policy``; blocks it omits get the
        first precision choice. A label the base space does not have raises ``InvalidArchError``."""
        network = self.base.validate(network)
        unknown = sorted(set(policy.precisions) - set(self.labels))
        if unknown:
            raise InvalidArchError(f"space {self.base.name!r} has no block(s) {unknown}; blocks: {list(self.labels)}")
        values = {**network.to_dict(), WEIGHTS_KEY: policy.weight_granularity,
                  ACTIVATIONS_KEY: policy.activation_scheme}
        values.update({f"q_{label}": policy.precisions.get(label, self.precisions[0]) for label in self.labels})
        active = self.base.active_block_labels(network)
        kinds = {values[f"q_{label}"] for label in self.labels if label in active}
        values[ALL_KEY] = kinds.pop() if len(kinds) == 1 else PER_BLOCK
        return self.canonicalize(self.parse(values))

    # ------------------------------------------------------------------ the base network's facts
    def largest(self) -> ArchConfig:
        """The base's largest network, every block in float: the most accurate subnet."""
        return self._uniform(self.base.largest(), "fp32" if "fp32" in self.precisions else self.precisions[0])

    def smallest(self) -> ArchConfig:
        """The base's smallest network in the narrowest precision on offer."""
        narrow = min(self.precisions, key=lambda p: PRECISION_BITS[p])
        return self._uniform(self.base.smallest(), narrow)

    def _uniform(self, network: ArchConfig, precision: str) -> ArchConfig:
        return self.combine(network, QuantPolicy.uniform(self.labels, precision))

    # ------------------------------------------------------------------ SearchSpace hooks
    def inactive(self, arch: ArchConfig) -> frozenset[str]:
        net = self.base._make([v for _, v in arch.items[: self._n_base]])
        off = set(self.base.inactive(net))
        active = self.base.active_block_labels(net)
        per_block = arch[ALL_KEY] == PER_BLOCK
        off.update(f"q_{label}" for label in self.labels if not per_block or label not in active)
        if all(self._precision(arch, label) == "fp32" for label in self.labels if label in active):
            off.update((WEIGHTS_KEY, ACTIVATIONS_KEY))
        return frozenset(off)

    def canonicalize(self, arch: ArchConfig) -> ArchConfig:
        """The base rule and the inactive settings reset, and a ``per_block`` policy that gives every
        block that runs one precision written as that uniform ``q_all``."""
        arch = self.validate(arch)
        return super().canonicalize(self._make(self._collapsed([v for _, v in arch.items])))

    def _collapsed(self, values: Sequence) -> list:
        """``values`` with ``q_all`` = the precision a ``per_block`` policy gives every running block."""
        values = list(values)
        at = self._n_base
        if values[at] != PER_BLOCK:
            return values
        net = self.base._make(values[: at])
        active = self.base.active_block_labels(net)
        kinds = {v for label, v in zip(self.labels, values[at + 1:]) if label in active}
        if len(kinds) == 1:
            values[at] = kinds.pop()
        return values

    def _make(self, values: Sequence) -> ArchConfig:
        """As the base class, but the id hashes the collapsed form: one network, one id."""
        items = tuple(zip(self.names, values))
        collapsed = self._collapsed(values)
        draft = ArchConfig(self.name, tuple(zip(self.names, collapsed)), arch_id="")
        off = self.inactive(draft)
        canonical = {p.name: (p.default if p.name in off else v) for p, v in zip(self.params, collapsed)}
        return ArchConfig(self.name, items, arch_id=stable_hash(self.name, canonical))

    def layers(self, arch: ArchConfig) -> list[LayerSpec]:
        """The base table with each row's ``precision`` set from its block's setting."""
        arch = self.validate(arch)
        return [replace(row, precision=self._precision(arch, row.block)) for row in self.base.layers(self.network(arch))]

    def block_labels(self) -> tuple[str, ...]:
        return self.labels

    def _to_flat(self, obj: Mapping) -> dict:
        """Flat ``{setting: value}``; a nested ``{"network": {...}, "quantization": {q_...}}`` and the
        base space's own layouts for the network part are accepted too."""
        if set(obj) == {"network", "quantization"}:
            if not all(isinstance(obj[k], Mapping) for k in obj):
                raise InvalidArchError("a nested quantized arch needs JSON objects under 'network' and 'quantization'")
            return {**self.base._to_flat(dict(obj["network"])), **dict(obj["quantization"])}
        network = {k: v for k, v in obj.items() if not str(k).startswith("q_")}
        return {**self.base._to_flat(network), **{k: v for k, v in obj.items() if str(k).startswith("q_")}}


def quantized(space: SearchSpace, *, precisions: Sequence[str] = DEFAULT_PRECISIONS) -> QuantizedSpace:
    """``space`` searched together with a per-block quantization policy."""
    return QuantizedSpace(space, precisions=precisions)


def split_quantized_name(name: str) -> tuple[str, tuple[str, ...]] | None:
    """``("tiny_mbv3", ("int8", "fp32"))`` for ``"tiny_mbv3+q"``; None for a plain name."""
    match = _NAME.match(name)
    if match is None:
        return None
    precisions = match["precisions"]
    return match["base"], tuple(precisions.split(",")) if precisions else DEFAULT_PRECISIONS

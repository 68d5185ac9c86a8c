"""``SearchSpace``: a named, versioned list of ``Choice`` settings.

A bare ``SearchSpace("mine", [Choice(...), ...])`` samples, validates, encodes and hashes
architectures. Concrete network families subclass it and add the layer table
(``layers``/``input_shape``) and the rule for settings the network ignores (``inactive``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from search_spaces.arch import ArchConfig, stable_hash
from search_spaces.choice import Choice, Scalar
from search_spaces.errors import InvalidArchError, NoLayerIRError
from search_spaces.layers import LayerSpec


class SearchSpace:
    """Settings, in order. Subclasses may override :meth:`inactive`, :meth:`layers`,
    :meth:`input_shape` and :meth:`_to_flat` (to accept other dict layouts in ``parse``)."""

    def __init__(self, name: str, params: Sequence[Choice], *, version: str = "1") -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"space name must be a non-empty string, got {name!r}")
        params = tuple(params)
        if not params:
            raise ValueError(f"space {name!r} needs at least one Choice, got none")
        for p in params:
            if not isinstance(p, Choice):
                raise ValueError(f"space {name!r}: {p!r} is not a Choice")
        names = [p.name for p in params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"space {name!r}: setting names must be unique, repeated: {dupes}")
        self.name = name
        self.version = str(version)
        self.params: tuple[Choice, ...] = params
        self._index = {p.name: i for i, p in enumerate(params)}
        self._validated: dict[ArchConfig, ArchConfig] = {}  # memo: search validates the same archs often

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, n_params={len(self.params)})"

    # ----------------------------------------------------------------- structure
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def cardinalities(self) -> np.ndarray:
        """Number of options per setting: the integer encoding's upper bounds (exclusive)."""
        return np.array([len(p) for p in self.params], dtype=np.int64)

    @property
    def size(self) -> int:
        """Number of raw setting combinations (ignores canonical duplicates)."""
        return int(np.prod([len(p) for p in self.params], dtype=object))

    # ------------------------------------------------------------- constructing
    def parse(self, obj: Mapping | ArchConfig) -> ArchConfig:
        """Build a validated ``ArchConfig`` from ``{param: value}`` (or a subclass's layout).

        Raises ``InvalidArchError`` naming the offending key and the valid values.
        """
        if isinstance(obj, ArchConfig):
            return self.validate(obj)
        if not isinstance(obj, Mapping):
            raise InvalidArchError(
                f"an architecture for space {self.name!r} must be a JSON object, got {type(obj).__name__}"
            )
        flat = self._to_flat(obj)
        unknown = [k for k in flat if k not in self._index]
        if unknown:
            raise InvalidArchError(
                f"unknown setting(s) {unknown} for space {self.name!r}; valid: {self._names_hint()}"
            )
        missing = [n for n in self.names if n not in flat]
        if missing:
            raise InvalidArchError(f"space {self.name!r}: missing setting(s) {missing}")
        values = []
        for p in self.params:
            try:
                values.append(p.options[p.index(flat[p.name])])
            except ValueError as err:
                raise InvalidArchError(f"space {self.name!r}: {err}") from None
        return self._make(values)

    def validate(self, arch: ArchConfig | Mapping) -> ArchConfig:
        """Return ``arch`` as a checked ``ArchConfig`` of this space, or raise ``InvalidArchError``."""
        if not isinstance(arch, ArchConfig):
            return self.parse(arch)
        checked = self._validated.get(arch)
        if checked is not None:
            return arch if checked.arch_id == arch.arch_id else checked
        if arch.space != self.name:
            raise InvalidArchError(f"architecture belongs to space {arch.space!r}, not {self.name!r}")
        if tuple(k for k, _ in arch.items) != self.names:
            raise InvalidArchError(f"architecture settings do not match space {self.name!r}: {self._names_hint()}")
        for p, (_, value) in zip(self.params, arch.items):
            if not p.contains(value):
                raise InvalidArchError(f"space {self.name!r}: {p.name}={value!r} is not one of {list(p.options)!r}")
        fresh = self._make([value for _, value in arch.items])
        if len(self._validated) >= 65536:
            self._validated.clear()
        self._validated[fresh] = fresh
        return arch if fresh.arch_id == arch.arch_id else fresh  # a hand-built or stale id is replaced

    def sample(self, rng: np.random.Generator) -> ArchConfig:
        """A uniformly random architecture, canonicalised. ``rng`` is the only randomness used."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"sample() needs a numpy.random.Generator, got {type(rng).__name__}")
        codes = [int(rng.integers(len(p))) for p in self.params]
        return self.canonicalize(self.decode(codes))

    # ------------------------------------------------------------------ encoding
    def encode(self, arch: ArchConfig) -> np.ndarray:
        """Integer codes (option indices), one per setting, as int64."""
        arch = self.validate(arch)
        return np.array([p.index(v) for p, (_, v) in zip(self.params, arch.items)], dtype=np.int64)

    def decode(self, codes: Sequence[int] | np.ndarray) -> ArchConfig:
        """Inverse of :meth:`encode`; raises ``InvalidArchError`` on a wrong length or an out-of-range code."""
        codes = np.asarray(codes)
        if codes.ndim != 1 or len(codes) != len(self.params):
            raise InvalidArchError(
                f"space {self.name!r}: expected {len(self.params)} integer codes, got shape {codes.shape}"
            )
        values = []
        for p, code in zip(self.params, codes.tolist()):
            if isinstance(code, float) and code.is_integer():
                code = int(code)  # whole-number floats, as some pymoo operators return
            if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code < len(p):
                raise InvalidArchError(
                    f"space {self.name!r}: code {code!r} for {p.name} must be an integer in 0..{len(p) - 1}"
                )
            values.append(p.options[code])
        return self._make(values)

    # --------------------------------------------------------------- canonical form
    def inactive(self, arch: ArchConfig) -> frozenset[str]:
        """Names of settings the network built from ``arch`` ignores. Default: none."""
        return frozenset()

    def canonicalize(self, arch: ArchConfig) -> ArchConfig:
        """``arch`` with every ignored setting reset to its ``Choice.default``."""
        arch = self.validate(arch)
        off = self.inactive(arch)
        if not off:
            return arch
        return self._make([p.default if p.name in off else v for p, (_, v) in zip(self.params, arch.items)])

    def arch_id(self, arch: ArchConfig | Mapping) -> str:
        return self.validate(arch).arch_id

    # ---------------------------------------------------------------- layer table
    def layers(self, arch: ArchConfig) -> list[LayerSpec]:
        """The network's ops in execution order. Bare spaces have none."""
        raise NoLayerIRError(f"space {self.name!r} has no layer table; only network families define layers()")

    def input_shape(self, arch: ArchConfig) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the input the network built from ``arch`` takes."""
        raise NoLayerIRError(f"space {self.name!r} has no input shape; only network families define it")

    def block_labels(self) -> tuple[str, ...]:
        """Every ``LayerSpec.block`` label any arch's layer table can use, in network order: the
        units a quantization policy assigns a precision to."""
        raise NoLayerIRError(f"space {self.name!r} has no layer table; only network families have blocks")

    def active_block_labels(self, arch: ArchConfig) -> frozenset[str]:
        """The block labels that occur in ``layers(arch)`` (default: read from the table)."""
        return frozenset(row.block for row in self.layers(arch))

    # ------------------------------------------------------------------- helpers
    def _to_flat(self, obj: Mapping) -> dict:
        """Turn an accepted dict layout into ``{param: value}``. Default: already flat."""
        return dict(obj)

    def _make(self, values: Sequence[Scalar]) -> ArchConfig:
        items = tuple(zip(self.names, values))
        draft = ArchConfig(self.name, items, arch_id="")
        off = self.inactive(draft)
        canonical = {p.name: (p.default if p.name in off else v) for p, v in zip(self.params, values)}
        return ArchConfig(self.name, items, arch_id=stable_hash(self.name, canonical))

    def _names_hint(self) -> str:
        names = list(self.names)
        return ", ".join(names) if len(names) <= 12 else ", ".join(names[:12]) + f", … ({len(names)} in all)"

"""An accelerator template searched with the network: ``AcceleratorSpace`` composes any network space.

``with_accelerator(space, device=..., knobs=...)`` appends one setting ``hw_<knob>`` per template
knob (e.g. ``hw_pe_rows``, ``hw_dataflow``, ``hw_weight_buffer_bytes``; the names are the device
template's own field names, prefixed) to the base space's settings, so encoders, searchers and
predictors see the hardware like any other choice and ``arch_id`` covers both halves. Every knob
always matters (none is ever inactive). The two halves stay separable: :meth:`network` is the base
arch (what the supernet trains; accuracy never sees the hardware), :meth:`template` the knob values,
:meth:`hw_id` a stable hash of the template alone (which accelerator a trial picked).

The space is named ``<base>+hw(<device>)``. The knob ranges are data of the device profile
(``[fpga.search]``), which this package cannot read (it imports nothing), so ``get_space`` resolves
such a name through a *template source* that ``hw_profiles`` registers (:func:`set_template_source`):
``device -> (knobs, default template)``. A stored job therefore rebuilds the same space as long as
its profile's search ranges are unchanged; the space version carries their hash.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

from search_spaces._composed import ComposedSpace
from search_spaces.arch import ArchConfig, stable_hash
from search_spaces.choice import Choice, Scalar
from search_spaces.errors import InvalidArchError, UnknownSpaceError
from search_spaces.layers import LayerSpec
from search_spaces.space import SearchSpace

PREFIX = "hw_"
_NAME = re.compile(r"^(?P<base>.+)\+hw\((?P<device>[^()]+)\)$")

TemplateSource = Callable[[str], "tuple[Mapping[str, Sequence[Scalar]], Mapping[str, Scalar]]"]
_source: TemplateSource | None = None


def set_template_source(source: TemplateSource) -> None:
    """Install ``device -> (knobs, default template)`` for ``get_space("<base>+hw(<device>)")``."""
    global _source
    _source = source


class AcceleratorSpace(ComposedSpace):
    """``base``'s settings followed by one ``hw_<knob>`` setting per accelerator knob (module doc).

    ``knobs`` maps a template field name to its options (non-empty, unique); ``default`` is the
    device's own template (one value per knob, each among its options): the accelerator a
    network-only search uses, and the sequential baseline's first stage."""

    def __init__(self, base: SearchSpace, *, device: str, knobs: Mapping[str, Sequence[Scalar]],
                 default: Mapping[str, Scalar]) -> None:
        if isinstance(base, AcceleratorSpace):
            raise ValueError(f"space {base.name!r} already searches an accelerator")
        if not isinstance(device, str) or not device or "(" in device or ")" in device:
            raise ValueError(f"accelerator device must be a profile name or path without parentheses, got {device!r}")
        if not knobs:
            raise ValueError(f"device {device!r} declares no accelerator knobs to search")
        clash = [k for k in knobs if PREFIX + k in base.names]
        if clash:
            raise ValueError(f"space {base.name!r} already has setting(s) {[PREFIX + k for k in clash]}")
        hw = [Choice(PREFIX + knob, options) for knob, options in knobs.items()]
        missing = sorted(set(knobs) - set(default))
        if missing:
            raise ValueError(f"default template of {device!r} lacks knob(s) {missing}")
        for choice in hw:
            if not choice.contains(default[choice.name[len(PREFIX):]]):
                raise ValueError(f"default {choice.name}={default[choice.name[len(PREFIX):]]!r} of {device!r} is "
                                 f"not among its search options {list(choice.options)}")
        self.base, self.device = base, device
        self.knobs = {c.name[len(PREFIX):]: c.options for c in hw}
        self.default_template = {k: default[k] for k in self.knobs}
        self._n_base = len(base.params)
        version = f"{base.version}+hw{stable_hash(device, {k: list(v) for k, v in self.knobs.items()})[:8]}"
        super().__init__(f"{base.name}+hw({device})", [*base.params, *hw], version=version)

    # ------------------------------------------------------------------ the two halves
    def network(self, arch: ArchConfig) -> ArchConfig:
        """The base space's arch: what the supernet trains, extracts and evaluates."""
        arch = self.validate(arch)
        return self.base.canonicalize(self.base._make([v for _, v in arch.items[: self._n_base]]))

    def template(self, arch: ArchConfig) -> dict[str, Scalar]:
        """``{knob: value}``: the accelerator half, keyed by template field name."""
        arch = self.validate(arch)
        return {name[len(PREFIX):]: value for name, value in arch.items[self._n_base:]}

    def hw_id(self, arch: ArchConfig | Mapping[str, Scalar]) -> str:
        """16 hex digits naming the accelerator (device and template) alone; ``arch`` may be a
        joint arch or a template dict."""
        template = self.template(arch) if isinstance(arch, ArchConfig) else self._checked_template(arch)
        return stable_hash(f"hw:{self.device}", template)

    def combine(self, network: ArchConfig, template: Mapping[str, Scalar] | None = None) -> ArchConfig:
        """The joint arch of a base ``network`` on ``template`` (None: the device's default); a knob
        it leaves out keeps the default. Unknown knobs or values raise ``InvalidArchError``."""
        network = self.base.validate(network)
        full = self._checked_template({**self.default_template, **dict(template or {})})
        return self.canonicalize(self._make([v for _, v in network.items] + [full[k] for k in self.knobs]))

    def _checked_template(self, template: Mapping[str, Scalar]) -> dict[str, Scalar]:
        unknown = sorted(set(template) - set(self.knobs))
        if unknown:
            raise InvalidArchError(f"unknown accelerator knob(s) {unknown} for {self.device!r}; "
                                   f"knobs: {', '.join(self.knobs)}")
        missing = sorted(set(self.knobs) - set(template))
        if missing:
            raise InvalidArchError(f"template for {self.device!r} lacks knob(s) {missing}")
        out = {}
        for knob, options in self.knobs.items():
            choice = self.params[self._index[PREFIX + knob]]
            try:
                out[knob] = options[choice.index(template[knob])]
            except ValueError as err:
                raise InvalidArchError(f"space {self.name!r}: {err}") from None
        return out

    def templates(self) -> list[dict[str, Scalar]]:
        """Every template of the knob grid, in mixed-radix order of the hw codes (last knob fastest)."""
        out: list[dict[str, Scalar]] = [{}]
        for knob, options in self.knobs.items():
            out = [{**t, knob: v} for t in out for v in options]
        return out

    # ------------------------------------------------------------------ the base network's facts
    def largest(self) -> ArchConfig:
        """The base's largest network on the device's default template."""
        return self.combine(self.base.largest())

    def smallest(self) -> ArchConfig:
        return self.combine(self.base.smallest())

    # ------------------------------------------------------------------ SearchSpace hooks
    def inactive(self, arch: ArchConfig) -> frozenset[str]:
        return self.base.inactive(self.base._make([v for _, v in arch.items[: self._n_base]]))

    def canonicalize(self, arch: ArchConfig) -> ArchConfig:
        arch = self.validate(arch)
        network = self.base.canonicalize(self.base._make([v for _, v in arch.items[: self._n_base]]))
        return self._make([v for _, v in network.items] + [v for _, v in arch.items[self._n_base:]])

    def _make(self, values: Sequence) -> ArchConfig:
        """The id hashes the base network's id (its canonical form, whatever its own rule) and the template."""
        values = list(values)
        network = self.base._make(values[: self._n_base])
        items = tuple(zip(self.names, values))
        hw = dict(zip(self.names[self._n_base:], values[self._n_base:]))
        return ArchConfig(self.name, items, arch_id=stable_hash(self.name, {"network": network.arch_id, **hw}))

    def layers(self, arch: ArchConfig) -> list[LayerSpec]:
        """The base network's table: the accelerator changes what a row costs, not what it is."""
        return self.base.layers(self.network(arch))

    def _to_flat(self, obj: Mapping) -> dict:
        """Flat ``{setting: value}``; a nested ``{"network": {...}, "accelerator": {knob: ...}}`` is
        accepted too (knobs without the ``hw_`` prefix), and the base's own layouts for the network."""
        if "network" in obj and "accelerator" in obj and set(obj) <= {"network", "accelerator", "quantization"}:
            if not all(isinstance(obj[k], Mapping) for k in obj):
                raise InvalidArchError("a nested co-design arch needs JSON objects under 'network' and 'accelerator'")
            network = {k: v for k, v in obj.items() if k != "accelerator"}
            if set(network) == {"network"}:
                network = dict(obj["network"])
            hw = {PREFIX + str(k): v for k, v in obj["accelerator"].items()}
            return {**self.base._to_flat(network), **hw}
        network = {k: v for k, v in obj.items() if not str(k).startswith(PREFIX)}
        return {**self.base._to_flat(network), **{k: v for k, v in obj.items() if str(k).startswith(PREFIX)}}


def with_accelerator(space: SearchSpace, *, device: str, knobs: Mapping[str, Sequence[Scalar]],
                     default: Mapping[str, Scalar]) -> AcceleratorSpace:
    """``space`` searched together with ``device``'s accelerator knobs."""
    return AcceleratorSpace(space, device=device, knobs=knobs, default=default)


def split_accelerator_name(name: str) -> tuple[str, str] | None:
    """``("tiny_mbv3", "zcu104")`` for ``"tiny_mbv3+hw(zcu104)"``; None for another name."""
    match = _NAME.match(name)
    return None if match is None else (match["base"], match["device"])


def resolve_accelerator_space(base: SearchSpace, device: str) -> AcceleratorSpace:
    """``base`` with ``device``'s knobs from the registered template source."""
    if _source is None:
        raise UnknownSpaceError(f"space '{base.name}+hw({device})' needs the device profiles: import hw_profiles "
                                "(or nas) before resolving it")
    knobs, default = _source(device)
    try:
        return AcceleratorSpace(base, device=device, knobs=knobs, default=default)
    except ValueError as err:
        raise UnknownSpaceError(f"space '{base.name}+hw({device})': {err}") from None

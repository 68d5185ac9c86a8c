"""Profiles written back as TOML, and the profile of an accelerator that co-design picked.

:func:`profile_to_toml` renders a :class:`~hw_profiles.profile.Profile` of any kind as a profile
document (the schema of :mod:`hw_profiles.profile`: the header keys, the kind's table, ``[fpga.search]``
for an FPGA template's design space, ``[sources]``). It reads the text back before returning it, so the
result always loads (``parse_profile``/``load_profile_file``) to an equal profile, search table
included; a profile that breaks the schema raises ``ProfileError`` instead of producing a bad file.
Writing the file is the caller's job (atomically, from ``nas``).

:func:`accelerator_profile` is the device profile of a joint arch's chosen accelerator: the device's
profile of an ``AcceleratorSpace`` with the arch's template applied, named
``<device-name>-<hw_id[:8]>`` at version ``"1"``, its description and ``[sources]`` saying who picked it.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
from typing import Any, Mapping

from hw_profiles.profile import FpgaSpec, Profile, ProfileError, get_profile, parse_profile
from search_spaces import ArchConfig
from search_spaces.accelerator import AcceleratorSpace

__all__ = ["accelerator_profile", "profile_to_dict", "profile_to_toml", "short_template"]

_FLOWS = {"weight_stationary": "ws", "output_stationary": "os"}


def _toml_value(value: Any) -> Any:
    """A spec value as TOML data: mappings as tables, tuples as arrays, the rest as is."""
    if isinstance(value, Mapping):
        return {str(k): _toml_value(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_toml_value(v) for v in value]
    return value


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """The TOML document of ``profile`` as plain data (None fields, TOML's missing keys, left out)."""
    table = {}
    for f in dataclasses.fields(profile.spec):
        value = getattr(profile.spec, f.name)
        if value is not None:
            table[f.name] = _toml_value(value)
    blob = {"name": profile.name, "version": profile.version, "kind": profile.kind,
            "description": profile.description, profile.kind: table}
    if profile.sources:
        blob["sources"] = {str(k): str(v) for k, v in profile.sources.items()}
    return blob


def profile_to_toml(profile: Profile) -> str:
    """``profile`` as a profile document that loads back to an equal ``Profile`` (module doc);
    ``ProfileError`` (one line) when it breaks the schema or would not read back equal."""
    import tomli_w  # the writer is needed only here (what reads profiles is tomllib, in the standard library)

    try:
        text = tomli_w.dumps(profile_to_dict(profile))
    except (TypeError, ValueError) as err:
        raise ProfileError(f"profile {profile.ref} cannot be written as TOML: {err}") from None
    back = parse_profile(tomllib.loads(text), source=f"{profile.name}.toml")
    if back != profile or _search(back) != _search(profile):
        raise ProfileError(f"profile {profile.ref} does not read back equal from its TOML (a value TOML cannot hold)")
    return text


def _search(profile: Profile):
    """The ``[fpga.search]`` table as comparable data (it is not part of ``FpgaSpec`` equality)."""
    search = getattr(profile.spec, "search", None)
    return None if not search else {k: tuple(v) for k, v in search.items()}


def short_template(template: Mapping[str, Any]) -> str:
    """A short label of an accelerator template (any subset of ``FpgaSpec`` fields), e.g.
    ``"ws 32x32 256/128/256KiB"``; clock and bit width are appended when given."""
    parts = []
    if "dataflow" in template:
        parts.append(_FLOWS.get(template["dataflow"], str(template["dataflow"])))
    if "pe_rows" in template or "pe_cols" in template:
        parts.append(f"{template.get('pe_rows', '?')}x{template.get('pe_cols', '?')}")
    buffers = [template.get(k) for k in ("input_buffer_bytes", "weight_buffer_bytes", "output_buffer_bytes")]
    if any(b is not None for b in buffers):
        parts.append("/".join("?" if b is None else f"{b / 1024:g}" for b in buffers) + "KiB")
    if "clock_hz" in template:
        parts.append(f"{template['clock_hz'] / 1e6:g}MHz")
    if "bit_width" in template:
        parts.append(f"int{template['bit_width']}")
    return " ".join(parts)


def _picked_by(space: AcceleratorSpace, arch: ArchConfig, job: str | None, trial: int | None) -> str:
    if job is not None:
        return f"job {job}" + (f" trial {trial}" if trial is not None else "")
    return f"arch {arch.arch_id} of space {space.name}" + (f" (trial {trial})" if trial is not None else "")


def accelerator_profile(space: AcceleratorSpace, arch: ArchConfig, *, job: str | None = None,
                        trial: int | None = None) -> Profile:
    """The device profile of ``arch``'s accelerator (module doc): ``space.device``'s profile with
    ``space.template(arch)`` applied. Its ``[sources]`` are the device's, each searched knob's line
    replaced by "searched by hwnas co-design, job J trial N" with its options and the device default.
    ``ValueError`` when ``space`` is not an ``AcceleratorSpace``; ``InvalidArchError`` for a foreign arch."""
    if not isinstance(space, AcceleratorSpace):
        raise ValueError(f"accelerator_profile needs an AcceleratorSpace, got {type(space).__name__}")
    arch = space.validate(arch)
    device = get_profile(space.device)
    if not isinstance(device.spec, FpgaSpec):
        raise ProfileError(f"{device.ref} is a {device.kind} profile; only fpga profiles have an accelerator")
    template = space.template(arch)
    spec = dataclasses.replace(device.spec, **template)
    hw_id = space.hw_id(arch)
    picked = _picked_by(space, arch, job, trial)
    sources = dict(device.sources)
    for knob, options in space.knobs.items():
        sources[knob] = (f"searched by hwnas co-design, {picked} (options {list(options)}; the device template's "
                         f"default was {getattr(device.spec, knob)!r})")
    full = {k: getattr(spec, k) for k in ("dataflow", "pe_rows", "pe_cols", "input_buffer_bytes",
                                          "weight_buffer_bytes", "output_buffer_bytes", "clock_hz", "bit_width")}
    job_part = f"{picked}, " if job is not None else ""
    description = (f"Accelerator template picked by hwnas co-design ({job_part}space {space.name}, arch "
                   f"{arch.arch_id}, hw_id {hw_id}) on {device.ref} ({spec.device}): {short_template(full)}. "
                   "Analytic estimate (hw_profiles.fpga), not built or measured on the board.")
    # the device's version: the same template on another calibration of the device is another profile
    return Profile(name=f"{device.name}-{hw_id[:8]}", version=device.version, kind="fpga", description=description,
                   spec=spec, sources=types.MappingProxyType(sources))

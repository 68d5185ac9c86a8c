"""The accelerator design space of an FPGA profile: which template knobs co-exploration searches.

A profile may declare ``[fpga.search]``: per knob of :data:`SEARCHABLE`, a non-empty list of
options, e.g. ``pe_rows = [8, 16, 32, 64]`` or ``dataflow = ["weight_stationary",
"output_stationary"]``. A knob it leaves out keeps the profile's own value; a profile without the
table gets :func:`default_knobs` (array sides 8–64, each buffer ¼×–2× its size, both dataflows; clock
and bit width fixed). The profile's own template is always one of the options (it is added where a
list leaves it out): it is the accelerator a network-only search runs on.

The device bounds the space: a template whose DSP or BRAM use exceeds the device is *infeasible*
(a result with ``feasible`` 0 and how far over, never an error), but a declared search range in
which even the smallest template cannot fit is refused when the profile loads (``ProfileError``),
whether or not the profile's own template fits: the range says what the user meant to search.
"""

from __future__ import annotations

from typing import Mapping

from hw_profiles.fpga_rows import DATAFLOWS, bram_count, dsp_count
from hw_profiles.profile import FpgaSpec, ProfileError, check_field, check_fields

SEARCHABLE = ("dataflow", "pe_rows", "pe_cols", "bit_width", "clock_hz", "input_buffer_bytes",
              "weight_buffer_bytes", "output_buffer_bytes")
"""The knobs ``[fpga.search]`` may list, in the order the joint genome appends them."""

_INT_KNOBS = ("pe_rows", "pe_cols", "bit_width", "input_buffer_bytes", "weight_buffer_bytes", "output_buffer_bytes")
_SIDES = (8, 16, 32, 64)
_BUFFER_SCALES = (0.25, 0.5, 1.0, 2.0)


def _error(message: str):
    return ProfileError(message)


def _check_value(knob: str, value, where: str):
    """``value`` as a valid option of ``knob``: the range declared on its ``FpgaSpec`` field (one
    declaration for the template's own value and its search options), or ProfileError naming it."""
    return check_field(FpgaSpec, knob, value, where)


def parse_search_table(table, where: str) -> Mapping[str, tuple]:
    """``[fpga.search]`` checked: known knobs, non-empty lists of unique valid options."""
    if not isinstance(table, dict):
        raise _error(f"{where} must be a table of knob = [options], got {table!r}")
    unknown = sorted(set(table) - set(SEARCHABLE))
    if unknown:
        raise _error(f"{where}: unknown knob(s) {unknown}; searchable: {', '.join(SEARCHABLE)}")
    out = {}
    for knob in SEARCHABLE:
        if knob not in table:
            continue
        options = table[knob]
        if not isinstance(options, list) or not options:
            raise _error(f"{where}.{knob} must be a non-empty list of options, got {options!r}")
        checked = tuple(_check_value(knob, v, f"{where}.{knob}[{i}]") for i, v in enumerate(options))
        if len(set(checked)) != len(checked):
            raise _error(f"{where}.{knob} lists an option twice: {list(options)}")
        out[knob] = checked
    return out


def check_template_ranges(values: dict, where: str) -> None:
    """Physical ranges of an ``[fpga]`` table (each key's range as declared on ``FpgaSpec``: sizes > 0,
    energies >= 0, a known dataflow, ...) and a search range that holds a template the device fits."""
    check_fields(FpgaSpec, values, where)
    check_search_fits(values, where)


def check_search_fits(values: dict, where: str) -> None:
    """A declared ``search`` range whose smallest template the device can fit (values already checked)."""
    search = values.get("search")
    if search:
        knobs = {k: search.get(k, (values[k],)) for k in _INT_KNOBS}  # the declared range, own value elsewhere
        dsp = int(dsp_count(min(knobs["pe_rows"]), min(knobs["pe_cols"]), min(knobs["bit_width"]),
                            values["macs_per_dsp"]))
        bram = int(bram_count(min(knobs["input_buffer_bytes"]), min(knobs["weight_buffer_bytes"]),
                              min(knobs["output_buffer_bytes"])))
        if dsp > values["dsp_total"] or bram > values["bram18k_total"]:
            raise _error(f"{where}.search: no template fits the device: the smallest needs {dsp} DSP (of "
                         f"{values['dsp_total']}) and {bram} BRAM18K (of {values['bram18k_total']}); lower the "
                         "smallest pe_rows/pe_cols/bit_width or buffer options")


def default_knobs(spec) -> dict[str, tuple]:
    """The design space of a profile without ``[fpga.search]`` (module doc)."""
    buffers = {name: tuple(sorted({max(1, int(getattr(spec, name) * k)) for k in _BUFFER_SCALES}))
               for name in ("input_buffer_bytes", "weight_buffer_bytes", "output_buffer_bytes")}
    return {"dataflow": DATAFLOWS, "pe_rows": _SIDES, "pe_cols": _SIDES, **buffers}


def design_space(spec) -> tuple[dict[str, tuple], dict[str, object]]:
    """``(knobs, default template)`` of an ``FpgaSpec``: the declared or default options per knob,
    each including the spec's own value, in :data:`SEARCHABLE` order."""
    declared = dict(spec.search) if spec.search else default_knobs(spec)
    knobs, default = {}, {}
    for knob in SEARCHABLE:
        if knob not in declared:
            continue
        own = getattr(spec, knob)
        options = tuple(declared[knob])
        if own not in options:
            options = (*options, own) if knob == "dataflow" else tuple(sorted((*options, own)))
        knobs[knob], default[knob] = options, own
    return knobs, default


def template_source(device: str):
    """``device -> (knobs, default)`` for ``search_spaces.accelerator`` (registered by ``hw_profiles``)."""
    from hw_profiles.profile import get_profile

    profile = get_profile(device)
    if profile.kind != "fpga":
        raise _error(f"{profile.ref} is a {profile.kind} profile; only fpga profiles have an accelerator to search")
    return design_space(profile.spec)

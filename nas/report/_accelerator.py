"""The accelerator of an FPGA profile as ``nas describe`` reports it: its template and its resources.

Contract: :func:`accelerator_report` is a plain JSON dict of one ``FpgaCostModel``'s accelerator:
``profile`` (name@version, with the changed knobs for a searched template), ``device`` (the part),
``template`` (dataflow, pe_rows, pe_cols, pes, bit_width, clock_hz and the three buffer sizes in bytes),
``label`` (:func:`hw_profiles.profile_toml.short_template`), ``resources`` (``FpgaResources.to_dict()``:
DSP and BRAM18K used of total, ``feasible``, how far over), ``feasible``, ``template_of`` ("arch": a joint
arch's own template, with ``hw_id``; "profile": the profile's own) and ``source`` "estimated". An
infeasible template is a result (``feasible`` false, ``dsp_over``/``bram18k_over`` > 0), never an error.
:func:`render_accelerator` is its text block; :func:`describe_devices` is ``nas describe --device`` without
an arch: each profile's header, and the accelerator of each fpga one. For the front of a co-design job
(an ``AcceleratorSpace``): :func:`accelerator_columns` (``hw_id`` and a short ``accelerator`` label per
row) and :func:`pe_counts` (the PE array size per row, what ``front.png`` colours by).
"""

from __future__ import annotations

from typing import Sequence

from hw_profiles import Profile, cost_model_for, get_profile
from hw_profiles.fpga import FpgaCostModel
from hw_profiles.fpga_space import SEARCHABLE
from hw_profiles.profile_toml import short_template
from search_spaces import AcceleratorSpace, InvalidArchError
from search_spaces.accelerator import PREFIX

TEMPLATE_KEYS = SEARCHABLE  # the template's own knobs (hw_profiles.fpga_space)


def accelerator_report(model: FpgaCostModel, *, hw_id: str | None = None) -> dict:
    """The accelerator of ``model`` (module doc); ``hw_id`` marks it as a joint arch's own template."""
    spec, res = model.spec, model.resources()
    template = {k: getattr(spec, k) for k in TEMPLATE_KEYS}
    template["pes"] = spec.pe_rows * spec.pe_cols
    report = {"profile": model.profile.ref, "device": spec.device, "template": template,
              "label": short_template(template), "resources": res.to_dict(), "feasible": res.feasible,
              "template_of": "arch" if hw_id is not None else "profile", "source": "estimated"}
    if hw_id is not None:
        report["hw_id"] = hw_id
    return report


def _share(used: int, total: int) -> str:
    return f"{used:,} of {total:,} ({used / total:.1%})" if total else f"{used:,} of {total:,}"


def render_accelerator(name: str, report: dict) -> list[str]:
    """The text lines of one :func:`accelerator_report` (``name``: the ``--device`` given)."""
    t, r = report["template"], report["resources"]
    which = (f"the arch's own template, hw_id {report['hw_id']}" if report["template_of"] == "arch"
             else "the profile's own template")
    if r["feasible"]:
        verdict = "yes"
    else:
        over = [f"{r[key]:,} {unit}" for key, unit in (("dsp_over", "DSP"), ("bram18k_over", "BRAM18K")) if r[key]]
        verdict = "no: over by " + " and ".join(over)
    kib = {k: f"{t[k] / 1024:g} KiB" for k in ("input_buffer_bytes", "weight_buffer_bytes", "output_buffer_bytes")}
    return [
        f"accelerator {name} [{report['source']}, {report['profile']}]: {which}",
        f"            device    {report['device']}",
        f"            dataflow  {t['dataflow']}",
        f"            PE array  {t['pe_rows']}x{t['pe_cols']} ({t['pes']:,} PEs), int{t['bit_width']} at "
        f"{t['clock_hz'] / 1e6:g} MHz",
        f"            buffers   input {kib['input_buffer_bytes']}, weight {kib['weight_buffer_bytes']}, "
        f"output {kib['output_buffer_bytes']}",
        f"            DSP       {_share(r['dsp'], r['dsp_total'])}",
        f"            BRAM18K   {_share(r['bram18k'], r['bram18k_total'])}",
        f"            feasible  {verdict}",
    ]


def profile_header(profile: Profile) -> dict:
    return {"profile": profile.ref, "kind": profile.kind, "description": profile.description}


def describe_devices(devices: Sequence[str]) -> dict:
    """``{"devices": {name: header}, "accelerators": {name: report}}`` for ``nas describe --device`` alone.
    Every profile is loaded (and checked) before anything is reported."""
    profiles = {name: get_profile(name) for name in devices}
    return {"devices": {name: profile_header(p) for name, p in profiles.items()},
            "accelerators": {name: accelerator_report(cost_model_for(p))
                             for name, p in profiles.items() if p.kind == "fpga"}}


def render_devices(info: dict) -> str:
    """The text of :func:`describe_devices`."""
    lines = []
    for name, header in info["devices"].items():
        lines += [f"device      {name} ({header['profile']}, {header['kind']})", f"            {header['description']}"]
        if name in info["accelerators"]:
            lines += render_accelerator(name, info["accelerators"][name])
    return "\n".join(lines)


# ------------------------------------------------------------------ front tables and plots of a co-design job
_PE_KNOBS = ("pe_rows", "pe_cols")
_LABEL_KNOBS = ("dataflow", "pe_rows", "pe_cols", "input_buffer_bytes", "weight_buffer_bytes", "output_buffer_bytes")


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def row_templates(frame, space: AcceleratorSpace) -> list[dict | None]:
    """Per row of a trials/front frame (``hw_<knob>`` columns) of a ``space`` job: its template, or None
    where the row holds no valid one (a knob's column missing or out of range)."""
    templates = []
    for _, row in frame.iterrows():
        try:
            template = {knob: _plain(row[PREFIX + knob]) for knob in space.knobs}
            space.hw_id(template)  # checks every value
        except (KeyError, InvalidArchError):
            template = None
        templates.append(template)
    return templates


def accelerator_columns(frame, space):
    """``frame`` with ``hw_id`` (16 hex digits) and ``accelerator`` (a short label, e.g. ``"ws 32x32
    256/128/256KiB"``: the knobs the space does not search at the device's values) added after
    ``arch_id`` when ``space`` is an ``AcceleratorSpace``; the same frame otherwise (or when empty)."""
    if not isinstance(space, AcceleratorSpace) or not len(frame) or "accelerator" in frame:
        return frame
    spec = get_profile(space.device).spec
    device = {k: getattr(spec, k) for k in _LABEL_KNOBS}
    ids, labels = [], []
    for template in row_templates(frame, space):
        ids.append(space.hw_id(template) if template is not None else "")
        labels.append(short_template({**device, **template}) if template is not None else "")
    out = frame.copy()
    if "hw_id" not in out:  # a SearchResult frame has it already (with network_id)
        at = list(out.columns).index("arch_id") + 1 if "arch_id" in out else len(out.columns)
        out.insert(at, "hw_id", ids)
    out.insert(list(out.columns).index("hw_id") + 1, "accelerator", labels)
    return out


def pe_counts(frame, space=None):
    """``pe_rows × pe_cols`` per row (float array) of a co-design job's frame, or None for another job:
    read from the ``hw_pe_rows``/``hw_pe_cols`` columns, a knob the space does not search at the device's
    value (needs ``space``). Without ``space``, a frame with both columns is taken for a co-design job's."""
    import numpy as np

    if space is not None and not isinstance(space, AcceleratorSpace):
        return None
    columns = [PREFIX + k for k in _PE_KNOBS]
    if not any(c in frame for c in columns):
        return None
    count = np.ones(len(frame))
    for knob, column in zip(_PE_KNOBS, columns):
        if column in frame:
            count = count * frame[column].astype(float).to_numpy()
        elif space is not None:
            count = count * float(getattr(get_profile(space.device).spec, knob))
        else:
            return None
    return count

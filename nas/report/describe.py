"""What ``nas describe`` reports about one architecture: a plain dict and its text rendering."""

from __future__ import annotations

from typing import Sequence

from hw_profiles.measured import CudaMeasuredCostModel, gpu_unavailable_reason
from hw_profiles import (Profile, cost_model_for, get_profile, layer_macs, layer_params, macs, params,
                         peak_activation_bytes, weight_bytes)
from hw_profiles.profile_toml import short_template
from hw_profiles.tvm_measured import measured_model_for
from nas.jobs.records import metric_from_dict
from nas.report._accelerator import accelerator_report, render_accelerator
from nas.report.tables import interval_note
from search_spaces import AcceleratorSpace, ArchConfig, QuantizedSpace, SearchSpace


def describe_arch(space: SearchSpace, arch: ArchConfig, devices: Sequence[str] = ()) -> dict:
    """arch_id, MACs, params, input shape, peak activation bytes (fp32, int8), the layer table, and
    for each device profile its metrics with provenance under ``devices[PROFILE][METRIC]``: estimated
    from the layer table (gpu, mcu, fpga), or measured on this host for cpu profiles (seconds; torch).
    A gpu profile whose card is the local GPU is measured with CUDA (``latency_ms``, measured) and
    keeps its roofline estimate as ``roofline_latency_ms``.

    ``accelerators[PROFILE]`` (:mod:`nas.report._accelerator`) reports each fpga profile's template and
    resources. For an ``AcceleratorSpace`` arch, ``accelerator`` holds its device, ``hw_id`` and template,
    and the space's own device is costed on the arch's own template (``TemplateModels``); every other
    device costs (or measures) the network part. ``macs``/``params`` are exact integers computed from
    ``space.layers(arch)``.
    """
    arch = space.validate(arch)
    profiles = {name: get_profile(name) for name in devices}  # every profile checked before any work
    rows = space.layers(arch)
    table = []
    for i, layer in enumerate(rows):
        row = {"index": i, **layer.to_dict(), "macs": layer_macs(layer), "params": layer_params(layer)}
        table.append(row)
    channels, height, width = space.input_shape(arch)
    return {
        "space": space.name,
        "space_version": space.version,
        "arch_id": arch.arch_id,
        "arch": arch.to_dict(),
        "resolution": [height, width],
        "input_shape": [1, channels, height, width],
        "macs": macs(rows),
        "params": params(rows),
        "peak_activation_bytes": {"fp32": peak_activation_bytes(rows, 4), "int8": peak_activation_bytes(rows, 1)},
        "weight_bytes": weight_bytes(rows),
        **_composed(space, arch),
        "layers": table,
        "devices": {name: {metric: m.to_dict() for metric, m in _device_metrics(space, arch, rows, p).items()}
                    for name, p in profiles.items()},
        "accelerators": {name: _accelerator(space, arch, p) for name, p in profiles.items() if p.kind == "fpga"},
    }


def _composed(space: SearchSpace, arch: ArchConfig) -> dict:
    """``quantization`` (the policy) and ``accelerator`` (device, hw_id, template) of a composed space's arch."""
    info = {}
    if isinstance(space, AcceleratorSpace):
        info["network_arch_id"] = space.network(arch).arch_id
        info["accelerator"] = {"device": space.device, "hw_id": space.hw_id(arch), "template": space.template(arch)}
        space, arch = space.base, space.network(arch)
    if isinstance(space, QuantizedSpace):
        info = {"quantization": space.policy(arch).to_dict(), **info}
    return info


def _own_device(space: SearchSpace, profile: Profile) -> bool:
    """Whether ``profile`` is the device whose accelerator ``space`` searches."""
    return isinstance(space, AcceleratorSpace) and profile.kind == "fpga" and get_profile(space.device) == profile


def _accelerator(space: SearchSpace, arch: ArchConfig, profile: Profile) -> dict:
    """The accelerator of an fpga profile: the arch's own template on the space's device, else the profile's."""
    if _own_device(space, profile):
        from hw_profiles.template_table import TemplateModels

        return accelerator_report(TemplateModels(space).model_for(space.template(arch)), hw_id=space.hw_id(arch))
    return accelerator_report(cost_model_for(profile))


def _device_metrics(space: SearchSpace, arch: ArchConfig, rows, profile: Profile) -> dict:
    """Estimated metrics from the layer table, or, for cpu profiles, latency measured on this host
    on the subnet extracted from a freshly initialised supernet (weights do not change latency). A
    joint arch: its own template on the space's device, the network part elsewhere."""
    if isinstance(space, AcceleratorSpace):
        if _own_device(space, profile):
            from hw_profiles.template_table import TemplateModels

            return TemplateModels(space).metrics(arch)
        return _device_metrics(space.base, space.network(arch), rows, profile)
    if profile.kind == "gpu" and gpu_unavailable_reason(profile) is None:
        # the card is here: measure, and keep the roofline estimate beside it for comparison
        estimate = cost_model_for(profile).metrics(rows)["latency_ms"]
        return {**_measure(space, arch, profile, CudaMeasuredCostModel), "roofline_latency_ms": estimate}
    if profile.kind != "cpu":
        return cost_model_for(profile).metrics(rows)
    return _measure(space, arch, profile, measured_model_for)


def _measure(space: SearchSpace, arch: ArchConfig, profile: Profile, model_cls) -> dict:
    from nas.profiling.builds import labelled, measured_for  # torch: only when a device is measured

    return labelled(measured_for(space, model_cls, profile).measure(arch), space, arch)


def _si(value: int) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f} {suffix}"
    return str(value)


def _mib(n_bytes: int) -> str:
    return f"{n_bytes:,} B ({n_bytes / 2**20:.2f} MiB)"


def _device_lines(info: dict) -> list[str]:
    """Each device's metrics (``value [lo, hi]`` for a predicted one with an interval, the coverage
    stated once after them) and fpga accelerators."""
    lines, coverages = [], {}
    for device, metrics in info["devices"].items():
        lines.append(f"device      {device}")
        for name, m in metrics.items():
            metric = metric_from_dict(m)
            spread = f" ± {m['spread']:.3g} (IQR)" if m["spread"] is not None else ""
            fmt = f", {m['precision']}" if m.get("precision") else ""
            lines.append(f"            {name:<24} {metric.interval_text('.4g'):>12} {m['unit']:<8}{spread}  "
                         f"[{m['source']}, {m['profile']}{fmt}]")
            if metric.coverage is not None:
                coverages.setdefault(name, []).append(metric.coverage)
        if device in info.get("accelerators", {}):
            lines += render_accelerator(device, info["accelerators"][device])
    note = interval_note(coverages)
    return [*lines, f"            {note}"] if note else lines


def render_text(info: dict) -> str:
    """A human-readable report of :func:`describe_arch`'s dict."""
    peak = info["peak_activation_bytes"]
    _, channels, height, width = info["input_shape"]
    lines = [
        f"space       {info['space']} (version {info['space_version']})",
        f"arch_id     {info['arch_id']}",
        f"resolution  {height}x{width} (input 1x{channels}x{height}x{width})",
        f"macs        {info['macs']:,} ({_si(info['macs'])})",
        f"params      {info['params']:,} ({_si(info['params'])})",
        f"peak activation memory (batch 1, largest live input+output+residual set)",
        f"            fp32 {_mib(peak['fp32'])}",
        f"            int8 {_mib(peak['int8'])}",
        f"weights     {_mib(info['weight_bytes'])} (each layer in its own format; float unless quantized)",
    ]
    if "accelerator" in info:  # a joint arch: which template it carries
        acc = info["accelerator"]
        lines.insert(2, f"template    {short_template(acc['template'])} on {acc['device']} (hw_id {acc['hw_id']}; "
                        f"network arch_id {info['network_arch_id']})")
    lines += _device_lines(info)
    lines.append("")
    header = ("#", "block", "op", "in", "out", "k", "s", "groups", "in_hw", "out_hw", "act", "se", "res",
              "macs", "params", "format")
    body = []
    for row in info["layers"]:
        body.append((
            str(row["index"]), row["block"], row["op"], str(row["in_channels"]), str(row["out_channels"]),
            str(row["kernel"]), str(row["stride"]), str(row["groups"]), "x".join(map(str, row["in_hw"])),
            "x".join(map(str, row["out_hw"])), row["act"], str(row["se_channels"]) if row["se"] else "-",
            "yes" if row["residual"] else "-", f"{row['macs']:,}", f"{row['params']:,}", row["precision"] or "-",
        ))
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    numeric = {0, 3, 4, 5, 6, 7, 13, 14}
    for cells in [header, *body]:
        lines.append("  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                               for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
    return "\n".join(lines)

"""``nas export`` of a co-design arch (``<space>+hw(<device>)``): the network files as for any arch, and
``accelerator.toml`` beside them.

Contract: :func:`accelerator_target` splits a joint arch (a trial of an ``AcceleratorSpace`` job, or
``--space ...+hw(...)`` with ``--arch``) into its space, the joint arch and the network part (an arch of
the base space, a ``+q`` base's arch keeping its policy), checked before anything is built.
:func:`export_with_accelerator` runs the network export into a staged folder and adds
``accelerator.toml`` (:func:`hw_profiles.profile_toml.accelerator_profile`, written atomically), so the
folder appears whole or not at all. ``arch.json`` stays the network's (``load_subnet`` reads it) and
gains an ``accelerator`` key; ``report.json`` records the joint arch (``space``/``arch``/``arch_id``, with
``network_arch_id`` the exported network's, as for a quantized arch) and the ``accelerator`` section:
file, sha256, profile name@version, device, hw_id, template, label, DSP/BRAM resources and ``feasible``.
An infeasible template is exported all the same (``feasible`` false, how far over), never an error.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from nas._folders import staged_folder
from nas.export._common import ExportError
from search_spaces import AcceleratorSpace, ArchConfig, get_space
from search_spaces.accelerator import split_accelerator_name

ACCELERATOR_FILE = "accelerator.toml"


@dataclasses.dataclass(frozen=True)
class AcceleratorTarget:
    """A joint arch to export: its ``space``, the joint ``arch``, and who picked it (``job``, ``trial``)."""

    space: AcceleratorSpace
    arch: ArchConfig
    job: str | None = None
    trial: int | None = None

    @property
    def network(self) -> ArchConfig:
        """The base space's arch: what the supernet extracts (a ``+q`` base's arch carries its policy)."""
        return self.space.network(self.arch)

    @property
    def network_space(self) -> str:
        return self.space.base.name


def accelerator_target(space_name: str | None, arch_obj: dict, *, job: str | None = None,
                       trial: int | None = None) -> AcceleratorTarget | None:
    """The :class:`AcceleratorTarget` of an arch of ``space_name``, or None when that is no ``+hw(...)`` space."""
    if space_name is None or split_accelerator_name(space_name) is None:
        return None
    import hw_profiles  # noqa: F401 - registers the device profiles' template source

    space = get_space(space_name)
    if not isinstance(space, AcceleratorSpace):
        raise ExportError(f"space {space_name!r} is not an accelerator co-design space")
    return AcceleratorTarget(space, space.parse(arch_obj), job, trial)


def accelerator_entry(target: AcceleratorTarget) -> tuple[str, dict]:
    """``(accelerator.toml text, report entry without sha256)``; every check of the profile happens here."""
    from hw_profiles.profile_toml import accelerator_profile, profile_to_toml
    from hw_profiles.template_table import TemplateModels
    from nas.report._accelerator import accelerator_report

    profile = accelerator_profile(target.space, target.arch, job=target.job, trial=target.trial)
    text = profile_to_toml(profile)
    hw_id = target.space.hw_id(target.arch)
    report = accelerator_report(TemplateModels(target.space).model_for(target.space.template(target.arch)),
                                hw_id=hw_id)
    entry = {"file": ACCELERATOR_FILE, "profile": profile.ref, "device": target.space.device, "hw_id": hw_id,
             "template": report["template"], "label": report["label"], "resources": report["resources"],
             "feasible": report["feasible"], "source": "estimated"}
    return text, entry


def export_with_accelerator(target: AcceleratorTarget, out: Path, export: Callable[[Path], object]):
    """``export(folder)`` (the network export into a new folder, returning its ``ExportResult``) staged
    inside ``out`` with ``accelerator.toml`` added; the result records the joint arch (module doc)."""
    from supernets.checkpoint import atomic_write_bytes, file_sha256

    text, entry = accelerator_entry(target)  # before anything is built: a bad profile costs nothing
    with staged_folder(Path(out), tag="export-") as folder:
        result = export(folder)
        atomic_write_bytes(folder / ACCELERATOR_FILE, text.encode("utf-8"))
        entry = {**entry, "sha256": file_sha256(folder / ACCELERATOR_FILE)}
        network_id = result.network_arch_id or result.arch_id
        result = dataclasses.replace(result, space=target.space.name, space_version=target.space.version,
                                     arch=target.arch.to_dict(),
                                     arch_id=target.arch.arch_id, network_arch_id=network_id, accelerator=entry)
        _add_to_arch_json(folder / "arch.json", target, entry)
        atomic_write_bytes(folder / "report.json", (json.dumps(result.to_json(), indent=2) + "\n").encode("utf-8"))
    return result


def _add_to_arch_json(path: Path, target: AcceleratorTarget, entry: dict) -> None:
    """``arch.json`` keeps the network's space and arch; its ``accelerator`` key names the joint arch."""
    from supernets.checkpoint import atomic_write_bytes

    info = json.loads(path.read_text(encoding="utf-8"))
    info["accelerator"] = {"space": target.space.name, "arch_id": target.arch.arch_id, "arch": target.arch.to_dict(),
                           "hw_id": entry["hw_id"], "file": ACCELERATOR_FILE}
    atomic_write_bytes(path, (json.dumps(info, indent=2) + "\n").encode("utf-8"))


def summary_line(entry: dict) -> str:
    """The export summary's line of the ``accelerator`` entry."""
    r = entry["resources"]
    over = [f"{r[k]:,} {unit}" for k, unit in (("dsp_over", "DSP"), ("bram18k_over", "BRAM18K")) if r[k]]
    fits = "feasible" if entry["feasible"] else "INFEASIBLE, over by " + " and ".join(over)
    return (f"accelerator {entry['file']}: {entry['profile']} hw_id {entry['hw_id']} ({entry['label']}); DSP "
            f"{r['dsp']:,}/{r['dsp_total']:,}, BRAM18K {r['bram18k']:,}/{r['bram18k_total']:,}: {fits} [estimated]")

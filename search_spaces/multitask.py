"""Several tasks on one device, searched as one genome (NASAIC-style multi-task co-design).

``MultiTaskSpace({"mnist": s1, "digits": s2})`` takes one co-design space per task
(``AcceleratorSpace``, all on the same device) and concatenates their settings, each prefixed with
its task (``mnist.ks_0``, ``digits.hw_pe_rows``): every task has its own network and its own
sub-accelerator (template and dataflow), mapped one to one. The device's DSP and BRAM are shared:
the sub-accelerators' sum must fit (a constraint the caller adds; see ``nas.jobs.multitask``), which
is how the search splits the budget between them. ``part(arch, task)`` is one task's joint arch.

Named ``tasks(<task>=<space>;<task>=<space>)``; ``get_space`` resolves the name. There is no single
layer table (several networks run): ``layers`` raises ``NoLayerIRError``; cost one task with
``part``. A task's network settings that its depth switches off are normalised as its space does.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from search_spaces.accelerator import AcceleratorSpace
from search_spaces.arch import ArchConfig, stable_hash
from search_spaces.choice import Choice
from search_spaces.errors import InvalidArchError, NoLayerIRError, UnknownSpaceError
from search_spaces.space import SearchSpace

_TASK = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_PREFIX, _SUFFIX = "tasks(", ")"


class MultiTaskSpace(SearchSpace):
    """One network and one sub-accelerator per task, on one shared device (module doc)."""

    def __init__(self, tasks: Mapping[str, AcceleratorSpace]) -> None:
        tasks = dict(tasks)
        if len(tasks) < 2:
            raise ValueError(f"a multi-task space needs at least two tasks, got {list(tasks)}")
        for task, space in tasks.items():
            if not isinstance(task, str) or not _TASK.match(task):
                raise ValueError(f"task name {task!r} must be 1-32 lowercase letters, digits, '_' or '-', "
                                 "starting with a letter")
            if not isinstance(space, AcceleratorSpace):
                raise ValueError(f"task {task!r}: needs a co-design space such as 'tiny_mbv3+hw(zcu104)', got "
                                 f"{getattr(space, 'name', space)!r}")
        devices = {space.device for space in tasks.values()}
        if len(devices) != 1:
            raise ValueError(f"every task must share one device, got {sorted(devices)}")
        self.tasks = tasks
        self.device = devices.pop()
        self._spans: dict[str, slice] = {}
        params, at = [], 0
        for task, space in tasks.items():
            params += [Choice(f"{task}.{p.name}", p.options) for p in space.params]
            self._spans[task] = slice(at, at + len(space.params))
            at += len(space.params)
        name = _PREFIX + ";".join(f"{t}={s.name}" for t, s in tasks.items()) + _SUFFIX
        version = "+".join(s.version for s in tasks.values())
        super().__init__(name, params, version=version)

    def part(self, arch: ArchConfig, task: str) -> ArchConfig:
        """Task ``task``'s joint arch (network and sub-accelerator), canonical."""
        arch = self.validate(arch)
        if task not in self.tasks:
            raise InvalidArchError(f"unknown task {task!r}; tasks: {', '.join(self.tasks)}")
        return self._part(arch.items, task)

    def _part(self, items: Sequence, task: str) -> ArchConfig:
        space = self.tasks[task]
        return space.canonicalize(space._make([v for _, v in items[self._spans[task]]]))

    def combine(self, parts: Mapping[str, ArchConfig]) -> ArchConfig:
        """The arch made of one joint arch per task."""
        missing = sorted(set(self.tasks) - set(parts))
        unknown = sorted(set(parts) - set(self.tasks))
        if missing or unknown:
            raise InvalidArchError(f"need one arch per task {list(self.tasks)}; missing {missing}, unknown {unknown}")
        values = []
        for task, space in self.tasks.items():
            values += [v for _, v in space.validate(parts[task]).items]
        return self.canonicalize(self._make(values))

    # ------------------------------------------------------------------ SearchSpace hooks
    def inactive(self, arch: ArchConfig) -> frozenset[str]:
        off = set()
        for task, space in self.tasks.items():
            part = space._make([v for _, v in arch.items[self._spans[task]]])
            off.update(f"{task}.{name}" for name in space.inactive(part))
        return frozenset(off)

    def canonicalize(self, arch: ArchConfig) -> ArchConfig:
        """Each task's part in its own space's canonical form."""
        arch = self.validate(arch)
        values = []
        for task in self.tasks:
            values += [v for _, v in self._part(arch.items, task).items]
        return self._make(values)

    def _make(self, values: Sequence) -> ArchConfig:
        """The id hashes each task's canonical id, in task order."""
        items = tuple(zip(self.names, values))
        ids = {task: self._part(items, task).arch_id for task in self.tasks}
        return ArchConfig(self.name, items, arch_id=stable_hash(self.name, ids))

    def layers(self, arch: ArchConfig):
        raise NoLayerIRError(f"space {self.name!r} runs one network per task; cost each with part(arch, task)")

    def _to_flat(self, obj: Mapping) -> dict:
        """Flat ``{"task.setting": value}``, or ``{task: {setting: value}}`` per task."""
        if set(obj) and set(obj) <= set(self.tasks) and all(isinstance(v, Mapping) for v in obj.values()):
            flat = {}
            for task, sub in obj.items():
                flat.update({f"{task}.{k}": v for k, v in self.tasks[task]._to_flat(dict(sub)).items()})
            return flat
        return dict(obj)


def split_multitask_name(name: str) -> list[tuple[str, str]] | None:
    """``[(task, space name), ...]`` for ``"tasks(a=x;b=y)"``; None for another name."""
    if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)):
        return None
    pairs = []
    for item in name[len(_PREFIX):-len(_SUFFIX)].split(";"):
        task, eq, space = item.partition("=")
        if not eq or not task or not space:
            raise UnknownSpaceError(f"multi-task space {name!r}: write tasks(<task>=<space>;<task>=<space>)")
        pairs.append((task, space))
    tasks = [task for task, _ in pairs]
    repeated = sorted({t for t in tasks if tasks.count(t) > 1})
    if repeated:
        raise UnknownSpaceError(f"multi-task space {name!r}: task name(s) {repeated} appear twice; name each task once")
    return pairs

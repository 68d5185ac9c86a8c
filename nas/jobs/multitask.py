"""Multi-task co-design (NASAIC-style): the metrics and objectives of a ``MultiTaskSpace`` job.

Every task's network runs on its own sub-accelerator (its part of the genome: template and
dataflow) of one shared device; the sub-accelerators work concurrently, one inference of each task
per round. The cheap metrics (estimated, analytic FPGA model per sub-accelerator,
``hw_profiles.template_table.TemplateModels``):

* ``tasks_makespan_ms``: the round's latency, the slowest task's;
* ``tasks_energy_mj``: the round's energy, the sum over tasks (each sub-accelerator's static power
  counted over its own task's latency, as the single-task model does);
* ``tasks_dsp``, ``tasks_bram18k``: the sub-accelerators' sums, bounded by the device's totals (the
  catalog adds both constraints, screened before anything expensive): this is the budget split.

Each figure's profile tag names every sub-accelerator (``mnist:zcu104@2+pe_rows=16 & digits:...``).
``task_accuracy`` measures one task's top-1 from that task's checkpoint (the network part only).
What this does not model: contention for the shared DDR between concurrent sub-accelerators (each
gets the device's full effective bandwidth), a network split across sub-accelerators, or
pipelining rounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from hw_profiles import Metric
from search_spaces import ArchConfig
from search_spaces.multitask import MultiTaskSpace

METRICS = ("tasks_makespan_ms", "tasks_energy_mj", "tasks_dsp", "tasks_bram18k")
_UNITS = {"tasks_makespan_ms": "ms", "tasks_energy_mj": "mJ", "tasks_dsp": "DSP", "tasks_bram18k": "BRAM18K"}
_MEMO_LIMIT = 65536


def multitask_metrics(space: MultiTaskSpace) -> dict[str, Callable[[list[ArchConfig]], list[Metric]]]:
    """``{metric: archs -> [Metric]}`` for :data:`METRICS` (cheap batch callables for
    ``MetricCatalog(cheap=...)``)."""
    from hw_profiles import cost_model_for, get_profile
    from hw_profiles.template_table import TemplateModels

    device_model = cost_model_for(get_profile(space.device))
    models = {task: TemplateModels(sub, device_model) for task, sub in space.tasks.items()}
    memo: dict[str, dict[str, Metric]] = {}

    def round_of(arch: ArchConfig) -> dict[str, Metric]:
        found = memo.get(arch.arch_id)
        if found is None:
            per_task = {task: m.metrics(space.part(arch, task)) for task, m in models.items()}
            tag = " & ".join(f"{task}:{per_task[task]['latency_ms'].profile}" for task in per_task)
            formats = {per_task[t]["latency_ms"].precision for t in per_task}
            precision = formats.pop() if len(formats) == 1 else "mixed"
            values = {"tasks_makespan_ms": max(p["latency_ms"].value for p in per_task.values()),
                      "tasks_energy_mj": sum(p["energy_mj"].value for p in per_task.values()),
                      "tasks_dsp": sum(p["dsp"].value for p in per_task.values()),
                      "tasks_bram18k": sum(p["bram18k"].value for p in per_task.values())}
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            found = memo[arch.arch_id] = {
                name: Metric(value=value, unit=_UNITS[name], source="estimated", profile=tag, precision=precision)
                for name, value in values.items()}
        return found

    return {name: (lambda archs, name=name: [round_of(a)[name] for a in archs]) for name in METRICS}


def multitask_constraints(space: MultiTaskSpace):
    """The shared device's bounds on the sub-accelerators' sums (``Constraint`` list)."""
    from hw_profiles import cost_model_for, get_profile
    from nas.jobs.objectives import Constraint

    spec = cost_model_for(get_profile(space.device)).spec
    return [Constraint("tasks_dsp", "<=", float(spec.dsp_total)),
            Constraint("tasks_bram18k", "<=", float(spec.bram18k_total))]


def task_accuracy(space: MultiTaskSpace, task: str, checkpoint: Path, *, data: str | None = None) \
        -> Callable[[ArchConfig], Metric]:
    """``arch -> Metric``: task ``task``'s top-1 (measured) from its own ``nas train`` checkpoint."""
    from nas.jobs.accuracy import AccuracyMetrics

    if task not in space.tasks:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(space.tasks)}")
    measure = AccuracyMetrics.open(Path(checkpoint), space.tasks[task], data=data).fn("accuracy")
    return lambda arch: measure(space.part(arch, task))


def multitask_objectives(space: MultiTaskSpace, checkpoints: Mapping[str, Path], *, data: Mapping[str, str] | None = None):
    """Objectives of a multi-task co-design job: each task's accuracy (maximised, from its checkpoint),
    the makespan and the energy (minimised)."""
    from nas.jobs.objectives import Objective

    missing = sorted(set(space.tasks) - set(checkpoints))
    if missing:
        raise ValueError(f"need a checkpoint per task; missing {missing}")
    accuracies = [Objective(f"acc_{task}", task_accuracy(space, task, checkpoints[task], data=(data or {}).get(task)),
                            direction="maximize") for task in space.tasks]
    return accuracies + [Objective("makespan_ms", "tasks_makespan_ms"), Objective("energy_mj", "tasks_energy_mj")]

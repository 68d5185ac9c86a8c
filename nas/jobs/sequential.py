"""The sequential baseline of a quantized search: search float32 first, then quantize its front to int8.

Contract: ``sequential_baseline(config, joint, ...)`` runs (or resumes) the job ``<joint>.float``: the
same config on the base space (float accuracy; MCU/FPGA costs at their native int8, as for any
plain space; constraints on the predicted quantization drop dropped), the same algorithm, budget and seed. Every member of its Pareto front is then
quantized uniformly to int8 (per-channel weights, asymmetric activations: onnxruntime's defaults)
and evaluated with the joint job's objectives and constraints, exactly as a joint trial is. The
report compares the joint front with those int8 members on one scale (both normalised by the ideal
and nadir of all feasible points of both), and says how many expensive evaluations each used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from nas._results import ReportRecord
from nas.jobs.evaluator import Evaluator
from nas.jobs.results import SearchResult, normalised_hypervolume
from nas.searchers.loop import pareto_mask
from search_spaces import QuantizedSpace, QuantPolicy


@dataclass(frozen=True, kw_only=True)
class SequentialComparison(ReportRecord):
    """Joint (arch × policy) search against float search then uniform int8, at equal search budget."""

    joint_hypervolume: float
    sequential_hypervolume: float
    ratio: float | None
    joint_front_size: int
    sequential_front_size: int
    joint_evaluations: int
    sequential_evaluations: int  # the float job's plus the int8 evaluations of its front (cheap rejects not counted)
    float_job: str
    sequential_front: list  # [{arch_id, values}] of the quantized float front


def check_sequential(config, space) -> None:
    """``ConfigError`` before any search runs when the baseline cannot be run for ``config``."""
    from nas._config_io import ConfigError

    if not isinstance(space, QuantizedSpace):
        return
    if "int8" not in space.precisions:
        raise ConfigError(f"[quantization] sequential_baseline quantizes a float front to int8, but space "
                          f"{space.name!r} offers no int8; set sequential_baseline = false")
    if config.latency_models:
        raise ConfigError(f"[quantization] sequential_baseline: the float job would need a latency model of "
                          f"{space.base.name}, but [latency_models] are fitted on {space.name}; set "
                          "sequential_baseline = false or measure the latency")


def sequential_baseline(config, joint: SearchResult, *, evaluator: Evaluator, **search_kwargs) -> SequentialComparison:
    """Run the float job, quantize its front, compare (see the module docstring). ``search_kwargs`` go to
    :func:`nas.jobs.search.search` (budget, seed, storage, catalog is rebuilt for the base space)."""
    from nas.jobs.search import search

    space = evaluator.space
    if not isinstance(space, QuantizedSpace):
        raise ValueError(f"the sequential baseline needs a quantized space, got {space.name!r}")
    from nas.jobs.config import PREDICTED_DROP

    float_config = replace(config, search=replace(config.search, space=space.base.name),
                           constraints=tuple(c for c in config.constraints if c.metric != PREDICTED_DROP))
    base_space, objectives, constraints, catalog, extra = float_config.build()
    search_kwargs = {**search_kwargs, "catalog": catalog, "config_extra": extra}
    float_result = search(base_space, objectives, constraints, algorithm=config.search.algorithm,
                          job=f"{joint.name}.float", **search_kwargs)
    int8 = QuantPolicy.uniform(space.labels, "int8")
    archs = [space.combine(base_space.parse(dict(r.arch)), int8) for r in float_result.front_records()]
    outcomes = evaluator.complete(evaluator.screen(archs))
    signs = np.array([o.sign for o in evaluator.objectives])
    rows = [np.array(o.values) * signs for o in outcomes if o.feasible]
    S = np.array(rows, dtype=np.float64).reshape(len(rows), len(evaluator.objectives))
    S = S[pareto_mask(S)] if len(S) else S
    J = joint.front_matrix()
    points = np.vstack([joint.feasible_matrix(), S])
    hv_joint = normalised_hypervolume(J, points) if len(points) else 0.0
    hv_seq = normalised_hypervolume(S, points) if len(points) else 0.0
    return SequentialComparison(
        joint_hypervolume=round(hv_joint, 6), sequential_hypervolume=round(hv_seq, 6),
        ratio=round(hv_joint / hv_seq, 4) if hv_seq > 0 else None, joint_front_size=len(J),
        sequential_front_size=len(S), joint_evaluations=_expensive(joint),
        sequential_evaluations=_expensive(float_result) + len(outcomes), float_job=float_result.name,
        sequential_front=[{"arch_id": o.arch.arch_id, "values": [float(v) for v in o.values]}
                          for o in outcomes if o.feasible])


def _expensive(result: SearchResult) -> int:
    """Evaluations that ran the expensive objectives: complete or failed trials (not cheap-pruned ones)."""
    return sum(r.state in ("complete", "fail") for r in result.records())

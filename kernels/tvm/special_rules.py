"""The special schedule rules that the default CPU schedule (``kernels.tvm.schedule``) offers blocks to
before its simple rules: int8 pointwise convs on AVX-512 VNNI (:mod:`kernels.tvm.pointwise`), depthwise
convs in channel blocks (:mod:`kernels.tvm.depthwise`) and matrix-vector products (:mod:`kernels.tvm.gemv`).

Contract: each rule is a pair ``(qualifies(sch, block, lanes), schedule(sch, block, cores=, lanes=))``;
:func:`apply_special` runs a rule on a fresh schedule of the function and keeps it only when every step
applied, so a rule applies all the way or not at all. ``SHAPE_RULES`` are the ones ``without=`` can
leave out; VNNI follows the target (and ``vnni=False``).
"""

from __future__ import annotations

import functools

SHAPE_RULES = ("depthwise", "gemv")


def special_rules(vnni: bool, shape_rules, min_parallel_work: int) -> list:
    """``(qualifies(sch, block, lanes), schedule(sch, block, cores=, lanes=))`` pairs to offer blocks to
    before the simple rules: int8 pointwise convs on VNNI, then the ``shape_rules`` named."""
    from kernels.tvm import depthwise, gemv, pointwise

    rules = []
    if vnni:
        rules.append((lambda sch, block, lanes: pointwise.qualifies(sch, block), pointwise.schedule_pointwise))
    if "depthwise" in shape_rules:
        rules.append((depthwise.qualifies,
                      functools.partial(depthwise.schedule_depthwise, min_parallel_work=min_parallel_work)))
    if "gemv" in shape_rules:
        rules.append((gemv.qualifies,
                      functools.partial(gemv.schedule_gemv, min_parallel_work=min_parallel_work)))
    return rules


def apply_special(sch, root, lanes: int, cores: int, rules: list):
    """``(schedule, root, names of the blocks done)``: each block that a rule of ``rules`` takes,
    scheduled by it on a fresh schedule of the function so far and kept only when every step applied
    (``Schedule.copy`` fails on some functions in 0.27)."""
    from tvm import s_tir

    done: set = set()
    for qualifies, schedule in rules:
        for name in [sch.get(b).name_hint for b in sch.get_child_blocks(root) if qualifies(sch, b, lanes)]:
            if name in done:
                continue
            trial = s_tir.Schedule(sch.mod["main"], error_render_level="none")
            before = {trial.get(b).name_hint for b in trial.get_child_blocks(trial.get_sblock("root"))}
            try:
                names = schedule(trial, trial.get_sblock(name), cores=cores, lanes=lanes)
            except Exception:  # noqa: BLE001 - TVM refused a step: keep the simple rules for this block
                names = None
            if names:
                sch, root = trial, trial.get_sblock("root")
                done |= names | ({sch.get(b).name_hint for b in sch.get_child_blocks(root)} - before)
    return sch, root, done


def special_functions(mod) -> int:
    """How many PrimFuncs of a scheduled ``mod`` carry a special rule's work (only read on a failure)."""
    from kernels.tvm import depthwise, gemv, pointwise

    return depthwise.depthwise_functions(mod) + gemv.gemv_functions(mod) + pointwise.vnni_functions(mod)

"""Benchmark (a fact, not a speed): do an arch's int8 TVM tasks depend on its weights and calibration?

One seeded random ofa_mbv3 arch at 160 px, two weight seeds, each quantized by onnxruntime (U8S8, per-channel
weights, MinMax over 16 seeded normal images) and imported into TVM with integer compute
(``kernels.tvm.build.import_for_build(..., integer=True)``); the float ONNX of each beside it. Tasks are the
legalised PrimFuncs deduped by structural hash (``kernels.tvm.db``), the keys a tuning database matches on.
If the two int8 builds share few tasks, a space-level database (``nas tune-space``) cannot serve int8 builds
and int8 must be tuned per file (``nas.export._int8_tvm.int8_tuning``). ``differs_in`` shows the first
differing TIR line of one task present in both under the same name.

    python experiments/benchmarks/int8_task_sharing.py

Prints one JSON object: {"float": {...}, "int8": {...}, "differs_in": [...], "machine": {...}}.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from pathlib import Path

import numpy as np
from _report import machine
from _subnets import subnet_files

RESOLUTION = 160


def _builds(space, arch, seed: int, work: Path, target) -> dict:
    """Per kind (``int8``, ``float``): task key -> task of ``arch`` with weights and calibration seeded ``seed``."""
    from kernels.tvm import build as tvm_build, db as tvm_db
    from kernels.tvm.schedule import legalize

    files = subnet_files(space, seed, RESOLUTION, work, None, arch=arch)
    mods = {"int8": tvm_build.import_for_build(files.quantized.path, integer=True),
            "float": tvm_build.import_onnx(files.float_path)}
    return {kind: {t.key: t for t in tvm_db.merge_tasks(tvm_db.extract_tasks(legalize(mod, target), target))}
            for kind, mod in mods.items()}


def main() -> None:
    from kernels.tvm.build import host_target
    from search_spaces import get_space

    space = get_space("ofa_mbv3")
    arch = space.with_resolution(space.sample(np.random.default_rng(0)), RESOLUTION)
    target = host_target(2)
    with tempfile.TemporaryDirectory(prefix="hwnas-int8-tasks-") as tmp:
        a, b = (_builds(space, arch, seed, Path(tmp), target) for seed in (1, 2))
    out = {"arch_id": arch.arch_id, "seeds": [1, 2]}
    for kind in ("float", "int8"):
        out[kind] = {"tasks_seed1": len(a[kind]), "tasks_seed2": len(b[kind]),
                     "shared_by_structural_hash": len(set(a[kind]) & set(b[kind]))}
    names_b = {t.name: t for t in b["int8"].values()}
    differs = []
    for key, task in sorted(a["int8"].items(), key=lambda kv: kv[1].name):
        other = names_b.get(task.name)
        if other is not None and key not in b["int8"]:
            diff = [line.strip() for line in difflib.unified_diff(task.mod.script().splitlines(),
                                                                  other.mod.script().splitlines(), lineterm="", n=0)
                    if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))]
            differs.append({"task": task.name, "first_differing_lines": diff[:2]})
        if len(differs) == 2:
            break
    print(json.dumps({**out, "differs_in": differs, "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()

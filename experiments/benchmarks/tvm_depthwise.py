"""Benchmark: the channel-blocked depthwise rule (``kernels.tvm.depthwise``) on whole ofa_mbv3 networks.

For seeded random ofa_mbv3 subnets (``_subnets.subnet_files``: float ONNX and onnxruntime's int8 QDQ file),
TVM builds with the untuned default schedule, each with and without the rule: float (``tvm_float``,
``tvm_float_rows``: depthwise convs vectorised along rows, the simple rules) and int8 in integer compute
(``tvm_int8``, ``tvm_int8_rows``; pointwise convs on VNNI where the host has it, in both), timed
interleaved with onnxruntime on the same two files (``ort_float``, ``ort_int8``, spin off), 2 threads,
one untimed call before each timed one (``kernels.timing.measure``: median and IQR). Also: how many
depthwise convs the rule took, and the largest difference between the outputs with and without it
(the same sums in the same order: 0 expected). Run it alone on the machine.

    python experiments/benchmarks/tvm_depthwise.py [--subnets 3] [--resolution 160] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
from _report import machine, timing_ms
from _subnets import subnet_files


def bench_subnet(space, i: int, r: int, repeats: int, work: Path, rng) -> dict:
    from kernels.runners import OrtFileRunner
    from kernels.timing import measure
    from kernels.tvm import build as tvm_build

    files = subnet_files(space, i, r, work, rng)
    q = files.quantized.path
    x = np.random.default_rng(100 + i).standard_normal(files.shape).astype(np.float32)
    models = {"tvm_float": tvm_build.compile_onnx(files.float_path, threads=2),
              "tvm_float_rows": tvm_build.compile_onnx(files.float_path, threads=2, depthwise=False),
              "tvm_int8": tvm_build.compile_onnx(q, threads=2, integer=True),
              "tvm_int8_rows": tvm_build.compile_onnx(q, threads=2, integer=True, depthwise=False)}
    fns = {k: (lambda m=m, t=m.tensor(x): m.invoke(t)) for k, m in models.items()}
    fns["ort_float"] = OrtFileRunner(files.float_path, x, threads=2, spin=False)
    fns["ort_int8"] = OrtFileRunner(q, x, threads=2, spin=False)
    t = measure(fns, warmup=5, repeats=repeats, threads=2, warm_calls=1)

    def ratio(a, b):
        return round(t[a].median_s / t[b].median_s, 3)

    return {"arch_id": files.arch_id, "r": r, "depthwise_functions_in_channel_blocks": _taken(files, q),
            "max_abs_diff_with_vs_without": {
                kind: float(np.abs(models[f"tvm_{kind}"].run(x) - models[f"tvm_{kind}_rows"].run(x)).max())
                for kind in ("float", "int8")},
            **{f"{k}_ms": timing_ms(v) for k, v in t.items()},
            "ratio_float_with_over_without": ratio("tvm_float", "tvm_float_rows"),
            "ratio_int8_with_over_without": ratio("tvm_int8", "tvm_int8_rows"),
            "ratio_tvm_float_over_ort_float": ratio("tvm_float", "ort_float"),
            "ratio_tvm_float_rows_over_ort_float": ratio("tvm_float_rows", "ort_float"),
            "ratio_tvm_int8_over_ort_int8": ratio("tvm_int8", "ort_int8"),
            "ratio_tvm_int8_rows_over_ort_int8": ratio("tvm_int8_rows", "ort_int8")}


def _taken(files, q) -> dict:
    """Depthwise PrimFuncs the rule scheduled, per build (float, int8)."""
    from kernels.tvm import build as tvm_build
    from kernels.tvm.depthwise import depthwise_functions
    from kernels.tvm.schedule import default_schedule

    target = tvm_build.host_target(2)
    return {kind: depthwise_functions(default_schedule(tvm_build.import_for_build(path, integer=kind == "int8"), target))
            for kind, path in (("float", files.float_path), ("int8", q))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subnets", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    from kernels.quantize import cpu_isa
    from search_spaces import get_space

    space = get_space("ofa_mbv3")
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="hwnas-tvm-depthwise-") as tmp:
        rows = [bench_subnet(space, i, args.resolution, args.repeats, Path(tmp), rng) for i in range(args.subnets)]
    keys = [k for k in rows[0] if k.startswith("ratio_")]
    print(json.dumps({"subnets": rows, **{f"median_{k}": statistics.median(r[k] for r in rows) for k in keys},
                      "schedule": "untuned default schedule (kernels.tvm.schedule), threads 2",
                      "machine": machine(cpu_isa=cpu_isa())}, indent=2))


if __name__ == "__main__":
    main()

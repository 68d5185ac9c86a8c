"""Benchmark: the default schedule's shape rules (``kernels.tvm.depthwise``, ``kernels.tvm.gemv``) on whole networks.

For seeded random ofa_mbv3 subnets (``_subnets.subnet_files``: float ONNX and onnxruntime's int8 QDQ file),
TVM builds with the untuned default schedule, float and int8 in integer compute (pointwise convs on VNNI
where the host has it, in every int8 build), each four ways: with both rules (``tvm_float``, ``tvm_int8``),
without the depthwise rule (``*_no_depthwise``: depthwise convs vectorised along rows), without the
matrix-vector rule (``*_no_gemv``) and without either (``*_simple``: the simple rules of the last release).
They are timed interleaved with onnxruntime on the same two files (``ort_float``, ``ort_int8``, spin off),
2 threads, one untimed call before each timed one (``kernels.timing.measure``: median and IQR). Also: the
largest difference between each build's output and the ``*_simple`` one's (integer builds: 0 expected;
float: the matrix-vector rule sums in another order). Run it alone on the machine.

    python experiments/benchmarks/tvm_shape_rules.py [--subnets 3] [--resolution 160] [--repeats 30]
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
from _report import machine, timing_ms
from _subnets import subnet_arguments, subnet_files

VARIANTS = {"": (), "_no_depthwise": ("depthwise",), "_no_gemv": ("gemv",), "_simple": ("depthwise", "gemv")}


def bench_subnet(space, i: int, r: int, repeats: int, work: Path, rng) -> dict:
    from kernels.runners import OrtFileRunner
    from kernels.timing import measure
    from kernels.tvm import build as tvm_build

    files = subnet_files(space, i, r, work, rng)
    paths = {"float": files.float_path, "int8": files.quantized.path}
    x = np.random.default_rng(100 + i).standard_normal(files.shape).astype(np.float32)
    models = {f"tvm_{kind}{suffix}": tvm_build.compile_onnx(path, threads=2, integer=kind == "int8", without=without)
              for kind, path in paths.items() for suffix, without in VARIANTS.items()}
    fns = {k: (lambda m=m, t=m.tensor(x): m.invoke(t)) for k, m in models.items()}
    fns.update({f"ort_{kind}": OrtFileRunner(path, x, threads=2, spin=False) for kind, path in paths.items()})
    t = measure(fns, warmup=5, repeats=repeats, threads=2, warm_calls=1)
    outputs = {k: m.run(x) for k, m in models.items()}

    def ratio(a, b):
        return round(t[a].median_s / t[b].median_s, 3)

    row = {"arch_id": files.arch_id, "r": r,
           "max_abs_diff_vs_simple": {k: float(np.abs(v - outputs[f"{_kind(k)}_simple"]).max())
                                      for k, v in outputs.items() if not k.endswith("_simple")},
           **{f"{k}_ms": timing_ms(v) for k, v in t.items()}}
    for kind in paths:
        for suffix in VARIANTS:
            if suffix != "_simple":
                row[f"ratio_tvm_{kind}{suffix}_over_simple"] = ratio(f"tvm_{kind}{suffix}", f"tvm_{kind}_simple")
        row[f"ratio_tvm_{kind}_over_ort_{kind}"] = ratio(f"tvm_{kind}", f"ort_{kind}")
        row[f"ratio_tvm_{kind}_simple_over_ort_{kind}"] = ratio(f"tvm_{kind}_simple", f"ort_{kind}")
    return row


def _kind(name: str) -> str:
    """``tvm_float`` or ``tvm_int8`` for a build's name."""
    return "tvm_int8" if name.startswith("tvm_int8") else "tvm_float"


def main() -> None:
    args = subnet_arguments(__doc__)
    from kernels.quantize import cpu_isa
    from search_spaces import get_space

    space = get_space("ofa_mbv3")
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="hwnas-tvm-shape-rules-") as tmp:
        rows = [bench_subnet(space, i, args.resolution, args.repeats, Path(tmp), rng) for i in range(args.subnets)]
    keys = [k for k in rows[0] if k.startswith("ratio_")]
    print(json.dumps({"subnets": rows, **{f"median_{k}": statistics.median(r[k] for r in rows) for k in keys},
                      "schedule": "untuned default schedule (kernels.tvm.schedule), threads 2",
                      "machine": machine(cpu_isa=cpu_isa())}, indent=2))


if __name__ == "__main__":
    main()

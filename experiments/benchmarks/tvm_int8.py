"""Benchmark: int8 in TVM (QDQ convolutions in integer compute, ``kernels.tvm.int8``) against onnxruntime's int8
and against TVM float32, on seeded random ofa_mbv3 subnets.

Each subnet is quantized by onnxruntime (``kernels.quantize.quantize_module``: U8S8, per-channel weights,
MinMax over 16 seeded normal images), then built by TVM (untuned default schedule) four ways: the int8 file
with its convolutions rewritten to integer compute (``tvm_int8``), the same without VNNI (``tvm_int8_plain``),
the same file as imported (Q/DQ in float, ``tvm_qdq_float``) and the float model (``tvm_float``). They are
timed interleaved with onnxruntime on the int8 file (``ort_int8``, spin off) with the same threads
(``kernels.timing.measure``: median and IQR; taking turns call by call, no warm call, so each build runs
after its neighbour evicted some of its weights: slower than alone, alike for all), and
``tvm_int8`` is compared with ``ort_int8`` on 8 seeded inputs: max difference in output quantization steps
and top-1 agreement. Run it alone on the machine.

    python experiments/benchmarks/tvm_int8.py [--subnets 3] [--resolution 160] [--repeats 30] [--tune-minutes 0]

With ``--tune-minutes M`` each subnet's int8 module is also tuned for M minutes (its own tasks, a fresh
database) and built with the records that make the whole network faster (``tvm_int8_tuned``, as ``nas export
--quantize --tune-minutes`` builds it): ``ratio_tvm_int8_tuned_over_tvm_int8`` (tuned / untuned, per subnet) and
``ratio_tvm_int8_tuned_over_ort_int8``; per subnet ``tuned`` holds the selection, the tuning summary and the
max abs difference of the tuned build's output from the untuned one's on one seeded input.

Prints one JSON object: {"subnets": [...], "median_ratio_tvm_int8_over_ort_int8": ...,
"median_ratio_tvm_int8_over_tvm_float": ..., "median_ratio_tvm_int8_over_tvm_int8_plain": ...,
with --tune-minutes "ratio_tvm_int8_tuned_over_tvm_int8": [...], "ratio_tvm_int8_tuned_over_ort_int8": [...],
"schedule": ..., "machine": {...}}.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
from _report import machine, timing_ms
from _subnets import subnet_arguments, subnet_files


def tuned_int8(q, x1: np.ndarray, minutes: float, work: Path):
    """``(TvmModel, selection dict, tune summary dict)``: the int8 module's own tasks tuned for ``minutes`` into a
    fresh database, built with the records that make the whole network faster (as ``nas export`` does)."""
    from kernels.tvm import build as tvm_build
    from nas.export._formats import TvmTuning, tune_and_select

    mod = tvm_build.import_for_build(q.path, integer=True)
    selection, summary = tune_and_select(mod, tvm_build.host_target(2), TvmTuning(db=work, minutes=minutes),
                                         x=x1, threads=2, log=lambda msg: None, what="int8")
    return tvm_build.TvmModel(selection.executable, threads=2), selection.to_dict(), summary.to_dict()


def bench_subnet(space, i: int, r: int, repeats: int, work: Path, rng, vnni: bool, tune_minutes: float) -> dict:
    import onnx

    from kernels.runners import OrtFileRunner
    from kernels.timing import measure
    from kernels.tvm import build as tvm_build
    from kernels.tvm.int8 import integer_compute

    files = subnet_files(space, i, r, work, rng)
    q, float_path, shape = files.quantized, files.float_path, files.shape
    rewritten = integer_compute(tvm_build.import_onnx(q.path))[1]
    x = np.random.default_rng(100 + i).standard_normal((8, *shape[1:])).astype(np.float32)
    models = {"tvm_int8": tvm_build.compile_onnx(q.path, threads=2, integer=True, vnni=vnni),
              "tvm_int8_plain": tvm_build.compile_onnx(q.path, threads=2, integer=True, vnni=False),
              "tvm_qdq_float": tvm_build.compile_onnx(q.path, threads=2),
              "tvm_float": tvm_build.compile_onnx(float_path, threads=2)}
    tuned = None
    if tune_minutes > 0:
        models["tvm_int8_tuned"], selection, summary = tuned_int8(q, x[:1], tune_minutes, work / f"db{i}")
        tuned = {"selection": selection, "tuning": summary,
                 "output_equal_to_untuned_max_abs": float(np.abs(models["tvm_int8_tuned"].run(x[:1])
                                                                 - models["tvm_int8"].run(x[:1])).max())}
    ort = OrtFileRunner(q.path, x[:1], threads=2, spin=False)
    reference = np.concatenate([ort.run(x[k:k + 1]) for k in range(len(x))])
    got = np.concatenate([models["tvm_int8"].run(x[k:k + 1]) for k in range(len(x))])
    got_float_qdq = np.concatenate([models["tvm_qdq_float"].run(x[k:k + 1]) for k in range(len(x))])
    graph = onnx.load(str(q.path)).graph
    step = q.output_step()
    tensors = {k: m.tensor(x[:1]) for k, m in models.items()}
    fns = {k: (lambda m=m, t=tensors[k]: m.invoke(t)) for k, m in models.items()}
    fns["ort_int8"] = ort
    t = measure(fns, warmup=5, repeats=repeats, threads=2)
    convs = sum(1 for n in graph.node if n.op_type == "Conv")
    return {"arch_id": files.arch_id, "r": r, "convs": convs, "convs_in_integer_compute": rewritten,
            "pointwise_conv_functions_on_vnni": models["tvm_int8"].vnni_functions,
            **{f"{k}_ms": timing_ms(v) for k, v in t.items()},
            "parity_vs_ort_int8": {"max_abs_diff": float(np.abs(reference - got).max()), "output_step": step,
                                   "max_diff_in_steps": round(float(np.abs(reference - got).max()) / step, 2),
                                   "top1_agreement": float((reference.argmax(1) == got.argmax(1)).mean()),
                                   "n": len(x),
                                   "tvm_qdq_float_max_diff_in_steps": round(float(np.abs(reference - got_float_qdq).max()) / step, 2)},
            "ratio_tvm_int8_over_ort_int8": round(t["tvm_int8"].median_s / t["ort_int8"].median_s, 3),
            "ratio_tvm_int8_over_tvm_float": round(t["tvm_int8"].median_s / t["tvm_float"].median_s, 3),
            "ratio_tvm_int8_over_tvm_int8_plain": round(t["tvm_int8"].median_s / t["tvm_int8_plain"].median_s, 3),
            "ratio_tvm_int8_over_tvm_qdq_float": round(t["tvm_int8"].median_s / t["tvm_qdq_float"].median_s, 3),
            **(_tuned_ratios(t, tuned) if tuned is not None else {})}


def _tuned_ratios(t: dict, tuned: dict) -> dict:
    return {"tuned": tuned,
            "ratio_tvm_int8_tuned_over_tvm_int8": round(t["tvm_int8_tuned"].median_s / t["tvm_int8"].median_s, 3),
            "ratio_tvm_int8_tuned_over_ort_int8": round(t["tvm_int8_tuned"].median_s / t["ort_int8"].median_s, 3)}


def main() -> None:
    args = subnet_arguments(__doc__, tune=True)
    from kernels.quantize import cpu_isa
    from kernels.tvm.build import host_target
    from kernels.tvm.pointwise import has_vnni
    from search_spaces import get_space

    space = get_space("ofa_mbv3")
    vnni = has_vnni(host_target(1))
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="hwnas-tvm-int8-") as tmp:
        rows = [bench_subnet(space, i, args.resolution, args.repeats, Path(tmp), rng, vnni, args.tune_minutes)
                for i in range(args.subnets)]
    tuned = {key: [r[key] for r in rows] for key in ("ratio_tvm_int8_tuned_over_tvm_int8",
                                                      "ratio_tvm_int8_tuned_over_ort_int8") if args.tune_minutes > 0}
    print(json.dumps({"subnets": rows,
                      "median_ratio_tvm_int8_over_ort_int8": statistics.median(r["ratio_tvm_int8_over_ort_int8"] for r in rows),
                      "median_ratio_tvm_int8_over_tvm_float": statistics.median(r["ratio_tvm_int8_over_tvm_float"] for r in rows),
                      "median_ratio_tvm_int8_over_tvm_int8_plain": statistics.median(
                          r["ratio_tvm_int8_over_tvm_int8_plain"] for r in rows),
                      **tuned,
                      "schedule": ("untuned default schedule (kernels.tvm.schedule) for every TVM build; tvm_int8: "
                                   "pointwise convs on AVX-512 VNNI (kernels.tvm.pointwise) when the host has it, "
                                   "tvm_int8_plain: the same integer compute without; tvm_int8_tuned (with "
                                   f"--tune-minutes, here {args.tune_minutes:g} per subnet): the int8 module's own "
                                   "tasks tuned into a fresh database, built never-slower (kernels.tvm.select) as "
                                   "nas export does; threads 2"),
                      "machine": machine(cpu_isa=cpu_isa())}, indent=2))


if __name__ == "__main__":
    main()

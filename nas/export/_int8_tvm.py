"""What Apache TVM does with the int8 QDQ model of ``nas export --quantize``: the ``int8.tvm`` report entry.

Contract: :func:`check_tvm_int8` imports ``model.int8.onnx`` into Relax with its QDQ convolutions and
matmuls rewritten to integer compute (``kernels.tvm.int8``, through ``kernels.tvm.build.import_for_build(...,
integer=True)``) and reads the dtypes its conv/matmul ops compute in (:func:`relax_compute_ops`, from that
module's TVMScript text). It builds it for this host as the float ``model.so`` is built
(``nas.export._formats.tune_and_select``): records go into the build only where they make the whole int8
network faster (``kernels.tvm.select``; ``tvm_schedule`` and ``tuning.selection`` say what was chosen, with
both whole-network timings). The records come from the int8 file's own database (:func:`int8_tuning`: a
folder of the host's tuning database named by the file's SHA-256), which ``nas export --tune-minutes N``
tunes for N minutes after the float build: an int8 task carries its file's quantization scales as
constants (two calibrations of one ofa_mbv3 arch shared 1 of 67 int8 tasks and all 55 float ones,
``experiments/benchmarks/int8_task_sharing.py``), so the (device, space) database could not reuse them.
It runs the build on ``TVM_PARITY_BATCH`` seeded inputs (batch 1, one at a time) against onnxruntime on the
same int8 file (verified when the max abs diff is within ``INT8_PARITY_RTOL`` × max(1, output magnitude)
and top-1 agrees on ``MIN_AGREEMENT`` of them), and times it beside the float ``model.so`` (taking turns).
Any failure, a parity failure included, gives ``"verified": false`` and the reason; it never fails the
export. The check writes nothing into the export folder (tuning writes records into the int8 database):
the int8 TVM build is evidence about TVM, not a deliverable (``experiments/benchmarks/tvm_int8.py``
compares it with onnxruntime's int8 and TVM float).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from nas.export._common import one_line, parity

TVM_PARITY_BATCH = 16
INT8_DB = "int8"  # the int8 builds' databases sit in this folder of the host's tuning database
# TVM computes convolutions and matmuls in integers but runs the other Q/DQ pairs as written (h-swish
# in float between a dequantize and a quantize); onnxruntime fuses them into int8 kernels that round
# intermediate values otherwise. Measured, Q/DQ all in float: on a random-init tiny_mbv3 subnet with a
# mixed policy TVM matched onnxruntime with graph optimisations off exactly (0.0) but differed from its
# optimised int8 run by 0.88 on logits up to 5.6 (16%), top-1 agreeing on 16/16; kernels/quantize.py
# saw one output step (all int8) and 6.5% (float blocks). With integer compute (tests/kernels/
# test_tvm_int8.py: at most one output step; an ofa_mbv3 subnet at 160 px: 15 steps, top-1 8/8). The
# float formats' 1e-3 would fail a correct build, so the check is looser in size and adds top-1
# agreement; a wrong build misses both.
INT8_PARITY_RTOL = 0.25
MIN_AGREEMENT = 0.9
TVM_PARITY_SEED = 2
SCHEDULE = ("untuned (kernels.tvm.build.default_schedule; int8 pointwise convs on AVX-512 VNNI where the CPU "
            "has it, kernels.tvm.pointwise: how many in vnni_pointwise_functions)")
TUNED_SCHEDULE = ("MetaSchedule records that make this int8 subnet faster (kernels.tvm.select), the default schedule "
                  "for the other tasks (int8 pointwise convs on AVX-512 VNNI where the CPU has it: how many in "
                  "vnni_pointwise_functions)")
COMPUTE_OPS = ("nn.conv1d", "nn.conv2d", "nn.conv3d", "nn.conv1d_transpose", "nn.conv2d_transpose", "matmul",
               "linear", "nn.dense")
FLOAT_QDQ = "float (Q/DQ lowered to float arithmetic)"
_TENSOR = r'R\.Tensor\((?:\([^()]*\),\s*)?dtype="(\w+)"\)'
_ANNOTATION = re.compile(r"(\w+): " + _TENSOR)
_CALL = re.compile(r"^\s*\w+: " + _TENSOR + r" = R\.([\w.]+)\((.*)$")
_CONST_DTYPE = re.compile(r'R\.const\(.*"(\w+)"\)$')


def _top_level_args(text: str) -> list[str]:
    """The comma-separated arguments of a call's text (after its opening parenthesis), outermost level only."""
    args, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                args.append(text[start:i].strip())
                return args
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    args.append(text[start:].strip())
    return args


def _arg_dtype(arg: str, dtypes: dict[str, str]) -> str:
    if arg in dtypes:
        return dtypes[arg]
    const = _CONST_DTYPE.match(arg)
    return const.group(1) if const else "const"  # a metadata constant: its dtype is not in the text


def relax_compute_ops(script: str) -> dict:
    """From a Relax module's TVMScript: each conv/matmul op kind with its ``"in,in->out"`` dtypes and count,
    the quantize/dequantize counts, and ``computes_in``: ``int8`` when every conv/matmul computes on
    integers, ``FLOAT_QDQ`` when none does (Q/DQ present), else how many do."""
    dtypes = dict(_ANNOTATION.findall(script))
    ops: dict[str, dict[str, int]] = {}
    counts = {"quantize": 0, "dequantize": 0}
    integer = total = 0
    for line in script.splitlines():
        match = _CALL.match(line)
        if match is None:
            continue
        out_dtype, op, rest = match.groups()
        if op in counts:
            counts[op] += 1
        if op not in COMPUTE_OPS:
            continue
        ins = [_arg_dtype(a, dtypes) for a in _top_level_args(rest)[:2]]
        key = f"{','.join(ins)}->{out_dtype}"
        bucket = ops.setdefault(op, {})
        bucket[key] = bucket.get(key, 0) + 1
        total += 1
        integer += out_dtype.startswith(("int", "uint")) or all(d.startswith(("int", "uint")) for d in ins)
    if total == 0:
        computes_in = "unknown (no conv/matmul op found)"
    elif integer == 0:
        computes_in = FLOAT_QDQ if counts["dequantize"] else "float"
    elif integer == total:
        computes_in = "int8"
    else:
        computes_in = f"mixed ({integer} of {total} conv/matmul ops on integers)"
    return {"computes_in": computes_in, "ops": ops, "compute_ops": total, "integer_ops": integer, **counts}


def _parity(tvm_runner, ort_int8, shape) -> dict:
    """TVM vs onnxruntime on the same int8 file over ``TVM_PARITY_BATCH`` seeded inputs (batch 1 each)."""
    import torch

    x = torch.randn((TVM_PARITY_BATCH, *shape[1:]), generator=torch.Generator().manual_seed(TVM_PARITY_SEED)).numpy()
    reference = ort_int8.run(x)
    got = np.concatenate([tvm_runner.run(x[i:i + 1]) for i in range(len(x))])
    agreement = float((reference.argmax(1) == got.argmax(1)).mean())
    result = {**parity(reference, got), "n": TVM_PARITY_BATCH, "inputs": f"torch.randn seeded {TVM_PARITY_SEED}",
              "agreement": agreement, "against": "onnxruntime on model.int8.onnx"}
    result["tolerance"] = INT8_PARITY_RTOL * max(1.0, result["output_max_abs"])
    result["tolerance_note"] = ("onnxruntime runs fused int8 kernels, TVM integer convolutions and matmuls with the "
                                "other Q/DQ ops as written in float: they round differently, so the check is "
                                f"{INT8_PARITY_RTOL} x max(1, |output|) and top-1 agreement >= {MIN_AGREEMENT}")
    return result


def _parity_failure(result: dict) -> str | None:
    close = bool(np.isfinite(result["max_abs_diff"]) and result["max_abs_diff"] <= result["tolerance"])
    if close and result["agreement"] >= MIN_AGREEMENT:
        return None
    return (f"TVM int8 (QDQ) parity check failed: max abs diff {result['max_abs_diff']:.3g} (tolerance "
            f"{result['tolerance']:.3g}, outputs up to {result['output_max_abs']:.3g}), top-1 agreement "
            f"{result['agreement']:.3f} (needs {MIN_AGREEMENT})")


def _latency(tvm_runner, float_tvm, *, threads: int, warmup: int, repeats: int, profile: str, precision: str) -> dict:
    """The int8 TVM build beside the float ``model.so`` (when exported), taking turns."""
    from hw_profiles.metric import Metric
    from kernels.timing import measure

    fns = {"tvm": float_tvm, "tvm_int8": tvm_runner} if float_tvm is not None else {"tvm_int8": tvm_runner}
    timings = measure(fns, warmup=warmup, repeats=repeats, threads=threads, warm_calls=1)
    return {name: Metric(value=t.median_ms, unit="ms", source="measured", profile=profile, spread=t.iqr_ms,
                         precision="fp32" if name == "tvm" else precision).to_dict() for name, t in timings.items()}


def check_tvm_int8(q, x: np.ndarray, *, ort_int8, threads: int, float_tvm=None, warmup: int = 3, repeats: int = 20,
                   profile: str, precision: str = "int8", tuning=None, log: Callable[[str], None] | None = None) -> dict:
    """The ``int8.tvm`` entry of the QDQ model ``q`` (a ``kernels.quantize.QuantizedOnnx``), module docstring;
    ``precision`` labels its latency (the policy's format: int8 or mixed); ``tuning``
    (``nas.export._formats.TvmTuning``, None: no database) is where its tasks are tuned and records found. A
    tuning that fails (e.g. another process tuning that database) is reported in ``tuning.error`` and the
    check goes on with the records already there."""
    from kernels.runners import TvmModelRunner
    from kernels.tvm.build import TvmModel, host_target, import_for_build
    from kernels.tvm.pointwise import vnni_functions
    from nas.export._formats import TvmTuning, tune_and_select, tuning_provenance

    entry: dict = {"verified": False, "imported_from": f"{q.path.name} (QDQ) through the Relax ONNX frontend",
                   "schedule": SCHEDULE, "runtime": "relax.VirtualMachine", "batch": 1,
                   "note": "a check, not a format: no file is written into the export"}
    tuning = tuning if tuning is not None else TvmTuning(db=None)
    tune_errors: list[str] = []
    try:
        start = time.perf_counter()
        mod = import_for_build(q.path, input_shape=q.input_shape, integer=True)
        relax = relax_compute_ops(mod.script())
        entry["computes_in"] = relax.pop("computes_in")
        entry["relax"] = relax
        selection, summary = tune_and_select(mod, host_target(threads), tuning, x=x, threads=threads,
                                             log=log or (lambda msg: None), what="int8 TVM",
                                             on_tune_error=lambda err: tune_errors.append(one_line(err)))
        # import, builds and (with records) the never-slower selection's timing; tuning not included
        entry["build_s"] = round(time.perf_counter() - start - (summary.elapsed_s if summary is not None else 0.0), 3)
        entry["tvm_schedule"] = selection.chosen
        if selection.chosen == "metaschedule-db":
            entry["schedule"] = TUNED_SCHEDULE
        entry["tuning"] = tuning_provenance(tuning, selection, summary)
        if tune_errors:  # the build went on from the database as it was
            entry["tuning"]["error"] = tune_errors[0]
        runner = TvmModelRunner(TvmModel(selection.executable, threads=threads), x)
        entry["vnni_pointwise_functions"] = vnni_functions(selection.scheduled)  # int8 pointwise convs on vpdpbusd
        entry["parity"] = _parity(runner, ort_int8, q.input_shape)
        failure = _parity_failure(entry["parity"])
        if failure is not None:  # the figures stay in the entry
            entry["reason"] = failure
            return entry
        entry["latency_ms"] = _latency(runner, float_tvm, threads=threads, warmup=warmup, repeats=repeats,
                                       profile=profile, precision=precision)
    except Exception as err:  # noqa: BLE001 - TVM failures are reported, not raised
        entry["reason"] = f"{type(err).__name__}: {one_line(err)}"
        return entry
    entry["verified"] = True
    return entry


def int8_tuning(tuning, path):
    """The int8 build's own database: ``<tuning.db>/int8/<first 16 hex of the int8 file's SHA-256>``, tuned
    ``tuning.minutes``. Its tasks carry that file's quantization scales, so no other file's build could use
    its records: they stay out of the (device, space) database that searches open."""
    from nas.export._formats import TvmTuning
    from supernets.checkpoint import file_sha256

    if tuning.db is None:
        return tuning
    return TvmTuning(db=Path(tuning.db) / INT8_DB / file_sha256(path)[:16], minutes=tuning.minutes)


def tvm_entry(q, x: np.ndarray, *, ort_int8, float_tvm, options, device, space, precision: str,
              log: Callable[[str], None]) -> dict:
    """The export's ``int8.tvm`` entry: :func:`check_tvm_int8` on this host with the export's tuning minutes and
    the int8 database of :func:`int8_tuning`; for another device, why not."""
    if not device.on_host:
        return {"verified": False, "reason": f"the int8 TVM build is checked on this host only; the TVM library for "
                                             f"{device.profile.ref} is built from the float network"}
    from nas.export._formats import host_tuning

    log("building the int8 model with TVM")
    try:
        tuning = int8_tuning(host_tuning(options.tuning_db, options.tune_minutes, device.profile, space), q.path)
    except Exception as err:  # noqa: BLE001 - reported in the entry, as every failure of the check is
        return {"verified": False, "reason": f"{type(err).__name__}: {one_line(err)}"}
    return check_tvm_int8(q, x, ort_int8=ort_int8, threads=device.threads, float_tvm=float_tvm,
                          warmup=options.warmup, repeats=options.repeats, profile=device.profile.ref,
                          precision=precision, tuning=tuning, log=log)

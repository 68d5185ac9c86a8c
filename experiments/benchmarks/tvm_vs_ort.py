"""Benchmark: TVM with a space-level MetaSchedule database against onnxruntime, untuned TVM and torch.

For ofa_mbv3 at 160 and at 224 px, tiny_mbv3 at 32 px and tiny_vit at 28 px: ``nas tune-space`` (that one
resolution) with the given budget into a fresh database, then 5 seeded random subnets each, compiled from the
database by the never-slower rule (``tvm_tuned``: ``kernels.tvm.select.compile_never_slower``, the build
``nas export`` makes; its own whole-network A/B is in ``selection``) and with the default schedule only
(``tvm_untuned``; where the rule chose the default build, ``tvm_tuned`` is that same build, timed once:
``tuned_is_default_build``), and timed beside onnxruntime (no spinning) in ``--runs`` repeated runs, each interleaved
in one process with the same thread count (``kernels.timing.measure``: median and IQR), each timed call after
``--warm-calls`` untimed calls of the same build (default 1: each runs with its own weights in the caches, as a
deployed model running back-to-back does, as ``nas export`` times a file alone and as the never-slower A/B
times both builds; 0 times each right after its neighbour, the protocol of every result committed before
this option existed, whose ``timing`` has no ``warm_calls``: it read tiny_mbv3 subnets up to 2x slower than
alone). torch (denormals
flushed) is timed once, alone, after them: interleaved, its busy-waiting OpenMP threads slowed tuned TVM ~70x.
Outputs are parity-checked. ``--keep-db DIR`` keeps the tuning databases (DIR/<space>@<resolution>).
Run it alone on the machine (e.g. under ``flock /tmp/hwnas-bench.lock``).

    python experiments/benchmarks/tvm_vs_ort.py [--minutes 10] [--tiny-minutes 4] [--repeats 30] [--runs 3] [--warm-calls 1]

Prints one JSON object: {"spaces": {...}, "subnets": [...], "targets": {...}, "machine": {...}}; ``targets``
says, per space, the median tuned/onnxruntime ratio of each run against 0.8 and the worst tuned/untuned
ratio of any subnet in any run against 1.0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from _report import machine, timing_ms

SPACES = (("ofa_mbv3", 160, "minutes"), ("ofa_mbv3", 224, "minutes"), ("tiny_mbv3", 32, "tiny_minutes"),
          ("tiny_vit", 28, "tiny_minutes"))
TARGET_OVER_ORT = 0.8  # for ofa_mbv3 (issue 19)
N_SUBNETS = 5


def _subnet(space, supernet_name: str, r: int, rng, i: int, work: Path):
    """(arch, module, input, ONNX path) of the i-th seeded random subnet at ``r`` px."""
    from kernels.onnx_export import export_onnx
    from supernets import create_supernet
    from supernets.testing import enliven

    arch = space.with_resolution(space.sample(rng), r)
    supernet = create_supernet(supernet_name, seed=i)
    enliven(supernet, arch, seed=i)
    module = supernet.extract(arch).eval()
    x = torch.randn((1, *space.input_shape(arch)), generator=torch.Generator().manual_seed(i))
    return arch, module, x, export_onnx(module, x, work / f"{supernet_name}-{r}-{i}.onnx")


def bench_space(name: str, r: int, minutes: float, repeats: int, runs: int, work: Path, db: Path,
                warm_calls: int) -> tuple[dict, list]:
    from kernels.runners import OrtFileRunner, TorchRunner, denormals_flushed
    from kernels.timing import measure
    from kernels.tvm import build as tvm_build, db as tvm_db
    from kernels.tvm.select import compile_never_slower
    from nas.export.tuning import tune_space
    from search_spaces import get_space

    report = tune_space(name, device="host-cpu", minutes=minutes, resolutions=[r], db=db, check=N_SUBNETS,
                        progress=False).to_json()
    space = get_space(name)
    threads = report["threads"]
    target = tvm_build.host_target(threads)
    database = tvm_db.open_database(db, create=False)
    rng = np.random.default_rng(1)
    rows = []
    for i in range(N_SUBNETS):
        arch, module, x, path = _subnet(space, name, r, rng, i, work)
        mod = tvm_build.import_onnx(path)
        selection = compile_never_slower(mod, target, database, x=x.numpy(), threads=threads)
        same = selection.chosen == "default"  # the deployed tuned build is the default build itself
        untuned = tvm_build.TvmModel(selection.default_executable, threads=threads)
        models = {"tvm_tuned": untuned if same else tvm_build.TvmModel(selection.executable, threads=threads),
                  "tvm_untuned": untuned}
        with torch.no_grad():
            reference = module(x).numpy()
        parity = {k: float(np.abs(m.run(x.numpy()) - reference).max()) for k, m in models.items()}
        xs = {k: m.tensor(x.numpy()) for k, m in models.items()}
        ort = OrtFileRunner(path, x.numpy(), threads=threads, spin=False)
        fns = {"tvm_untuned": lambda: models["tvm_untuned"].invoke(xs["tvm_untuned"]), "ort": ort}
        if not same:
            fns["tvm_tuned"] = lambda: models["tvm_tuned"].invoke(xs["tvm_tuned"])
        per_run = [measure(fns, warmup=5, repeats=repeats, threads=threads, warm_calls=warm_calls)
                   for _ in range(runs)]
        for timings in per_run:
            timings.setdefault("tvm_tuned", timings["tvm_untuned"])
        with denormals_flushed():  # alone: its OpenMP threads busy-wait after each call (module docstring)
            torch_ms = timing_ms(measure({"torch": TorchRunner(module, x, threads=threads)}, warmup=5, repeats=repeats,
                                   threads=threads)["torch"])
        rows.append({"space": name, "r": r, "arch_id": arch.arch_id, "tuned_is_default_build": same,
                     "runs": [{f"{k}_ms": timing_ms(t) for k, t in timings.items()} for timings in per_run],
                     "torch_ms": torch_ms, "selection": selection.to_dict(),
                     "hit_rate": selection.stats.hit_rate, "flops_coverage": round(selection.stats.flops_coverage, 4),
                     "tasks": selection.stats.tasks_total, "parity_max_abs_diff": parity,
                     "output_max_abs": float(np.abs(reference).max()),
                     "ratio_tvm_tuned_over_ort": [_ratio(t, "tvm_tuned", "ort") for t in per_run],
                     "ratio_tvm_tuned_over_untuned": [_ratio(t, "tvm_tuned", "tvm_untuned") for t in per_run]})
    summary = {k: report[k] for k in ("tasks", "workloads", "tuning_minutes", "extract_s", "hit_rate_mean",
                                      "hit_rate_min", "flops_coverage_mean")}
    summary["tuning"] = report["tuning"]
    summary["threads"] = threads
    return summary, rows


def _ratio(timings, a: str, b: str) -> float:
    return round(timings[a].median_s / timings[b].median_s, 3)


def targets(spaces: dict, subnets: list, runs: int) -> dict:
    """Per space: the median tuned/onnxruntime ratio over its subnets in each run (ofa_mbv3: against
    ``TARGET_OVER_ORT``, in every run) and, per subnet, the median tuned/untuned ratio over the runs (against
    1.0 on every subnet), with the worst single run beside it."""
    out = {}
    for key in spaces:
        rows = [row for row in subnets if f"{row['space']}@{row['r']}" == key]
        over_ort = [statistics.median(row["ratio_tvm_tuned_over_ort"][k] for row in rows) for k in range(runs)]
        per_subnet = [statistics.median(row["ratio_tvm_tuned_over_untuned"]) for row in rows]
        entry = {"tuned_over_ort_median_per_run": over_ort, "tuned_over_untuned_per_subnet": per_subnet,
                 "tuned_over_untuned_worst_run": max(max(row["ratio_tvm_tuned_over_untuned"]) for row in rows),
                 "tuned_is_default_build": sum(row["tuned_is_default_build"] for row in rows),
                 "tuned_over_untuned_target_met": max(per_subnet) <= 1.0}
        if key.startswith("ofa_mbv3@"):
            entry.update(tuned_over_ort_target=TARGET_OVER_ORT, tuned_over_ort_target_met=max(over_ort) <= TARGET_OVER_ORT)
        out[key] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="tune-space budget for ofa_mbv3, per resolution (default 10)")
    parser.add_argument("--tiny-minutes", type=float, default=4.0, help="tune-space budget for tiny_mbv3 and for tiny_vit (default 4 each)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3, help="repeated timing runs per subnet (default 3)")
    parser.add_argument("--warm-calls", type=int, default=1, help="untimed calls before each timed one (default 1)")
    parser.add_argument("--only", choices=sorted({f"{s[0]}@{s[1]}" for s in SPACES}), action="append",
                        help="benchmark this space@resolution only (repeatable)")
    parser.add_argument("--keep-db", type=Path, help="write the tuning databases to DIR/<space>@<resolution> (kept)")
    args = parser.parse_args()
    spaces, subnets = {}, []
    with tempfile.TemporaryDirectory(prefix="hwnas-tvm-vs-ort-") as tmp:
        for name, r, budget in SPACES:
            key = f"{name}@{r}"
            if args.only and key not in args.only:
                continue
            db = (args.keep_db / key) if args.keep_db else Path(tmp) / f"db-{key}"
            summary, rows = bench_space(name, r, getattr(args, budget), args.repeats, args.runs, Path(tmp), db,
                                        args.warm_calls)
            spaces[key] = {"space": name, "resolution": r, **summary}
            subnets += rows
    print(json.dumps({"spaces": spaces, "subnets": subnets, "targets": targets(spaces, subnets, args.runs),
                      "tuning_minutes": {key: s["tuning_minutes"] for key, s in spaces.items()},
                      "timing": {"protocol": "kernels.timing.measure, warmup 5: tvm_tuned, tvm_untuned, ort (spin off) "
                                            "interleaved, repeated --runs times, each timed call after --warm-calls "
                                            "untimed calls of the same build; torch once after, alone",
                                 "repeats": args.repeats, "runs": args.runs, "warm_calls": args.warm_calls},
                      "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()

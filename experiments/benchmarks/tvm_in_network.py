"""Benchmark (diagnosis): why a tuning record that wins in MetaSchedule's runner can lose inside the whole network.

For seeded random ofa_mbv3 subnets and a tuning database (``--db``, else ``nas tune-space`` for ``--minutes``
into a fresh one), each task of the subnet is timed four ways and the suspects are separated:
- ``runner``: the tuning runner's own figures (the record's ``run_secs``, the default schedule's time in
  ``default_schedule_times.json``): each task alone, 3 calls in a row on the same buffers (warm caches);
- ``runner_cold``: the same builds re-timed by the same runner with ``enable_cpu_cache_flush`` (caches flushed
  before every call) and, alongside, without it (``runner_warm``, same process and moment;
  ``kernels.tvm.diagnose.runner_times``);
- ``network``: the task's calls timed inside the running network (``kernels.tvm.select.task_times_in_network``),
  default build and all-records build taking turns, with ``--threads`` (default 2) and with 1 thread;
- denormals: the share of subnormal float32 values among the outputs of each call in the network.
Prints one JSON object: per-subnet sums and, for the ``--top`` tasks by default time, every figure.
Run it alone on the machine.

    python experiments/benchmarks/tvm_in_network.py [--db DIR | --minutes 6] [--subnets 2] [--top 12]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from _report import machine


def subnormal_share(model, x: np.ndarray, symbols: dict) -> dict:
    """Task key -> share of subnormal float32 values in its outputs over one inference."""
    counts: dict[int, list[int]] = {}
    tiny = np.finfo(np.float32).tiny

    def instrument(func, symbol, before, ret, *args) -> int:
        if not before and symbol in symbols and args:
            a = args[-1].numpy()
            if a.dtype == np.float32:
                c = counts.setdefault(symbols[symbol], [0, 0])
                c[0] += int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))
                c[1] += a.size
        return 0

    model.vm.set_instrument(instrument)
    try:
        model.run(x)
    finally:
        model.vm.set_instrument(None)
    return {k: c[0] / max(c[1], 1) for k, c in counts.items()}


def diagnose(arch, space, database, db: Path, threads: int, top: int, work: Path, seed: int) -> dict:
    from kernels.onnx_export import export_onnx
    from kernels.tvm import build as tvm_build, db as tvm_db
    from kernels.tvm.diagnose import runner_times
    from kernels.tvm.select import keys_by_symbol, task_times_in_network
    from supernets import create_supernet
    from supernets.testing import enliven

    supernet = create_supernet(space.name, seed=seed)
    enliven(supernet, arch, seed=seed)
    module = supernet.extract(arch).eval()
    x = torch.randn((1, *space.input_shape(arch)), generator=torch.Generator().manual_seed(seed))
    mod = tvm_build.import_onnx(export_onnx(module, x, work / f"{arch.arch_id}.onnx"))
    target = tvm_build.host_target(threads)
    legalized = tvm_db.legalize_tasks(mod, target)
    tasks = legalized.tasks
    defaults = tvm_db.load_default_times(db)
    records = {t.key: r for t in tasks if (r := tvm_db.best_record(database, t, target)) is not None}
    symbols = keys_by_symbol(legalized.mod)
    builds = {"record": tvm_db.compile_relax(legalized, target, database, only=set(records)).executable,
              "default": tvm_db.compile_relax(legalized, target, None).executable}
    network = {}
    for n in sorted({1, threads}):
        models = {k: tvm_build.TvmModel(e, threads=n) for k, e in builds.items()}
        network[n] = task_times_in_network(models, x.numpy(), symbols, rounds=20)
    denormal = subnormal_share(tvm_build.TvmModel(builds["default"], threads=threads), x.numpy(), symbols)
    ranked = sorted(tasks, key=lambda t: -network[threads]["default"].get(t.key, 0.0))[:top]
    warm = runner_times(ranked, records, target, threads, flush=False)
    cold = runner_times(ranked, records, target, threads, flush=True)

    def us(v):
        return None if v is None else round(v * 1e6, 1)

    rows = []
    for t in ranked:
        rec = records.get(t.key)
        rows.append({"task": t.name, "calls": t.weight,
                     "runner_tuning_us": {"default": us(defaults.get(str(t.key))),
                                          "record": us(float(np.mean([float(v) for v in rec.run_secs])) if rec else None)},
                     "runner_warm_us": {k: us(warm.get((t.key, k))) for k in ("default", "record")},
                     "runner_cold_us": {k: us(cold.get((t.key, k))) for k in ("default", "record")},
                     **{f"network_{n}t_us": {k: us(network[n][k].get(t.key)) for k in ("default", "record")}
                        for n in network},
                     "subnormal_share": round(denormal.get(t.key, 0.0), 4)})

    def total(name, n):
        return round(sum(network[n][name].values()) * 1e3, 3)

    return {"arch_id": arch.arch_id, "r": space.input_shape(arch)[1], "tasks": len(tasks),
            "tasks_with_record": len(records),
            "network_sum_ms": {f"{n}t": {k: total(k, n) for k in ("default", "record")} for n in network},
            "max_subnormal_share": round(max(denormal.values(), default=0.0), 4), "top_tasks": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="an ofa_mbv3 tuning database (default: tune a fresh one)")
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--subnets", type=int, default=2)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2, help="TVM threads (the 1-thread timing is added)")
    args = parser.parse_args()
    from kernels.tvm import db as tvm_db
    from nas.export.tuning import tune_space
    from search_spaces import get_space

    space = get_space("ofa_mbv3")
    with tempfile.TemporaryDirectory(prefix="hwnas-in-network-") as tmp:
        db = args.db or Path(tmp) / "db"
        tuning = None
        if args.db is None:
            tuning = tune_space(space.name, minutes=args.minutes, resolutions=[args.resolution], db=db, check=0,
                                progress=False).to_json()["tuning"]
        database = tvm_db.open_database(db, create=False)
        rng = np.random.default_rng(1)
        rows = [diagnose(space.with_resolution(space.sample(rng), args.resolution), space, database, db, args.threads, args.top,
                         Path(tmp), seed=i) for i in range(args.subnets)]
    print(json.dumps({"space": space.name, "resolution": args.resolution, "tuning": tuning, "subnets": rows,
                      "machine": machine()}, indent=1))


if __name__ == "__main__":
    main()

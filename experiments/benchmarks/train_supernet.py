"""Benchmark: which training strategy gives better subnets at equal wall time?

On ``mnist-mini`` with ``tiny_mbv3``, each strategy trains for at most ``--budget-s`` seconds
(epochs chosen from a measured step time so the run fits), then the largest, the smallest and
5 fixed random subnets are evaluated on the validation split with and without BN
recalibration. Prints JSON. Aim: largest >= 97%, smallest >= 95% after recalibration.

    python experiments/benchmarks/train_supernet.py [--budget-s 600] [--strategies sandwich,ps]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from nas.data import load_data
from nas.training.train import build_optimizer, build_strategy, build_supernet, train
from nas.training.config import TrainConfig
from supernets.checkpoint import load_checkpoint
from supernets.evaluate import evaluate
from supernets.training import train_steps

EVAL_SECONDS_PER_EPOCH = 5.0  # three probe subnets with BN recalibration, measured ~2-4 s


def seconds_per_step(config: TrainConfig, n_steps: int = 12) -> float:
    """Median-free but warm: time ``n_steps`` steps after 3 warm-up steps."""
    data = load_data(config.data, seed=config.seed)
    supernet = build_supernet(config, data)
    strategy = build_strategy(config)
    plan = strategy.plan(10_000, supernet.space)  # the space's own stages (a ViT's differ from a CNN's)
    if hasattr(strategy, "set_teacher"):
        strategy.set_teacher(supernet.extract(supernet.space.largest()))
        plan = plan[-1:]  # time the most expensive stage (teacher + all dims elastic)
    optimizer = build_optimizer(supernet, config)
    batches = list(islice(data.train_batches(batch_size=config.batch_size, seed=0, epoch=0), n_steps + 3))
    rng = np.random.default_rng(0)
    cpu = torch.device("cpu")
    train_steps(supernet, strategy, plan, batches[:3], optimizer, base_lr=config.lr, rng=rng,
                global_step=plan[0].start, device=cpu)
    start = time.perf_counter()
    train_steps(supernet, strategy, plan, batches[3:], optimizer, base_lr=config.lr, rng=rng,
                global_step=plan[0].start, device=cpu)
    return (time.perf_counter() - start) / n_steps


def evaluate_subnets(out: Path, config: TrainConfig) -> dict:
    data = load_data(config.data, seed=config.seed)
    supernet = build_supernet(config, data)
    supernet.load_state_dict(load_checkpoint(out)["model"])
    space = supernet.space
    rng = np.random.default_rng(12345)
    archs = {"largest": space.largest(), "smallest": space.smallest()}
    archs.update({f"random_{i}": space.sample(rng) for i in range(5)})
    results = {}
    for label, arch in archs.items():
        val = lambda: data.val_batches(batch_size=config.eval_batch_size)  # noqa: E731
        recal = evaluate(supernet, arch, val(), calib_batches=data.calib_batches(batch_size=64, seed=0),
                         n_calib_batches=config.calib_batches)
        plain = evaluate(supernet, arch, val())
        results[label] = {"arch_id": arch.arch_id, "top1_bn_recalibrated": round(recal.top1, 4),
                          "top1_without_recalibration": round(plain.top1, 4)}
    randoms = [v["top1_bn_recalibrated"] for k, v in results.items() if k.startswith("random")]
    results["random_mean_bn_recalibrated"] = round(float(np.mean(randoms)), 4)
    return results


def run_strategy(strategy: str, budget_s: float, workdir: Path, base: TrainConfig | None = None) -> dict:
    """Train ``base`` (default: the defaults) with ``strategy`` for as many epochs as fit in ``budget_s``."""
    base = (base or TrainConfig()).with_overrides(strategy=strategy)
    data = load_data(base.data, seed=base.seed)
    steps = data.steps_per_epoch(batch_size=base.batch_size)
    sec_per_step = seconds_per_step(base)
    epochs = max(1, int(budget_s // (steps * sec_per_step * 1.15 + EVAL_SECONDS_PER_EPOCH)))
    config = base.with_overrides(epochs=epochs)
    out = workdir / f"{base.space}-{strategy}"
    start = time.perf_counter()
    train(config, out=out, progress=False)
    wall = time.perf_counter() - start
    return {"epochs": epochs, "steps_per_epoch": steps, "measured_s_per_step": round(sec_per_step, 3),
            "train_wall_s": round(wall, 1), "within_budget": wall <= budget_s,
            "subnets": evaluate_subnets(out, config)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=600.0)
    parser.add_argument("--strategies", default="sandwich,ps")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: run_strategy(name, args.budget_s, Path(tmp)) for name in args.strategies.split(",")}

    def score(r: dict) -> float:
        s = r["subnets"]
        return (s["largest"]["top1_bn_recalibrated"] + s["smallest"]["top1_bn_recalibrated"]
                + s["random_mean_bn_recalibrated"]) / 3

    print(json.dumps({
        "benchmark": "train_supernet", "space": "tiny_mbv3", "data": "mnist-mini", "budget_s": args.budget_s,
        "aim": {"largest": 0.97, "smallest": 0.95},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "load_avg_1m_at_end": os.getloadavg()[0]},
        "strategies": results,
        "winner_at_equal_wall_time": max(results, key=lambda k: score(results[k])),
    }, indent=2))


if __name__ == "__main__":
    main()

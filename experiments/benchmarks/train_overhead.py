"""Benchmark: cost of training a subnet *inside* the supernet vs. the same subnet extracted.

For random archs of each supernet, one training step (zero_grad, forward, cross-entropy,
backward, SGD step) runs with the arch active in the supernet and on ``extract(arch)``, on the
same batch and thread count, the two alternating, ``--repeats`` times each (median of >= 20).
Prints JSON: ``ratio`` = median supernet step / median extracted step (target <= 1.10), the two
step times, the spread of per-pair ratios, and the machine.

    python experiments/benchmarks/train_overhead.py [--archs 5] [--repeats 25] [--spaces tiny_mbv3,ofa_mbv3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

import nas

BATCH = {"tiny_mbv3": 64, "ofa_mbv3": 16, "tiny_vit": 64, "autoformer_t": 16}


def step_time(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    return time.perf_counter() - start


def bench_space(name: str, n_archs: int, repeats: int, seed: int) -> dict:
    supernet = nas.create_supernet(name, seed=seed).train()
    space = supernet.space
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    super_ms, sub_ms, pair_ratios = [], [], []
    for _ in range(n_archs):
        arch = space.sample(rng)
        x = torch.randn(supernet.input_shape(arch, BATCH.get(name, 16)), generator=gen)
        y = torch.randint(0, space.num_classes, (x.shape[0],), generator=gen)
        subnet = supernet.extract(arch).train()
        opt_super = torch.optim.SGD(supernet.parameters(), lr=1e-4, momentum=0.9)
        opt_sub = torch.optim.SGD(subnet.parameters(), lr=1e-4, momentum=0.9)
        supernet.set_active(arch)
        for _ in range(3):  # warm-up
            step_time(supernet, opt_super, x, y), step_time(subnet, opt_sub, x, y)
        for _ in range(repeats):
            a = step_time(supernet, opt_super, x, y)
            b = step_time(subnet, opt_sub, x, y)
            super_ms.append(a * 1e3), sub_ms.append(b * 1e3), pair_ratios.append(a / b)
    q25, q50, q75 = np.percentile(pair_ratios, [25, 50, 75])
    return {
        "ratio": round(float(np.median(super_ms) / np.median(sub_ms)), 3),
        "supernet_step_ms_median": round(float(np.median(super_ms)), 2),
        "extracted_step_ms_median": round(float(np.median(sub_ms)), 2),
        "pair_ratio": {"median": round(q50, 3), "iqr": round(q75 - q25, 3)},
        "batch": BATCH.get(name, 16), "archs": n_archs, "repeats_per_arch": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spaces", default=",".join(nas.list_supernets()))
    args = parser.parse_args()
    result = {
        "benchmark": "train_overhead",
        "target": "ratio <= 1.10",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
        "spaces": {name: bench_space(name, args.archs, args.repeats, args.seed) for name in args.spaces.split(",")},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

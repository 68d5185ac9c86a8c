"""Benchmark: does ``extract(arch)`` reproduce the supernet exactly, and how fast is it?

For N random archs per registered supernet (weights enlivened and BN recalibrated per arch so
outputs carry signal) it reports the max |extract − active| output difference, whether MACs and
params counted by forward hooks on the extracted module equal the layer table's, and the time
to extract one subnet, next to the time of one forward pass of that subnet in the same run.

    python experiments/benchmarks/extract_parity.py [--n-archs 100] [--seed 0] [--spaces tiny_mbv3,ofa_mbv3]

Prints one JSON object (keys per space: max_abs_diff, macs_params_agree, extract_ms, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

import nas
from nas.report.describe import describe_arch
from nas.testing import enliven


def summary(values: list[float]) -> dict:
    q10, q25, q50, q75, q90 = np.percentile(values, [10, 25, 50, 75, 90])
    return {"median": round(q50, 3), "iqr": round(q75 - q25, 3), "p10": round(q10, 3), "p90": round(q90, 3)}


def bench_space(name: str, n_archs: int, seed: int) -> dict:
    supernet = nas.create_supernet(name, seed=seed)
    space = supernet.space
    rng = np.random.default_rng(seed)
    max_diff, out_scale, agree = 0.0, [], 0
    extract_ms, forward_ms = [], []
    for i in range(n_archs):
        arch = space.sample(rng)
        enliven(supernet, arch, seed=seed + i)
        x = torch.randn(supernet.input_shape(arch, batch=2), generator=torch.Generator().manual_seed(i))
        with supernet.active(arch), torch.no_grad():
            expected = supernet(x)
        start = time.perf_counter()
        subnet = supernet.extract(arch)
        extract_ms.append((time.perf_counter() - start) * 1e3)
        with torch.no_grad():
            start = time.perf_counter()
            got = subnet(x)
            forward_ms.append((time.perf_counter() - start) * 1e3)
        max_diff = max(max_diff, float((got - expected).abs().max()))
        out_scale.append(float(expected.abs().max()))
        info = describe_arch(space, arch)
        agree += nas.count_macs_params(subnet, supernet.input_shape(arch)) == (info["macs"], info["params"])
    return {
        "n_archs": n_archs,
        "max_abs_diff": max_diff,
        "output_abs_max_median": round(float(np.median(out_scale)), 4),
        "macs_params_agree": agree == n_archs,
        "macs_params_agree_count": agree,
        "extract_ms": summary(extract_ms),
        "compared_with_forward_ms_batch2": summary(forward_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-archs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spaces", default=",".join(nas.list_supernets()))
    args = parser.parse_args()
    result = {
        "benchmark": "extract_parity",
        "machine": {
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        },
        "spaces": {name: bench_space(name, args.n_archs, args.seed) for name in args.spaces.split(",")},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

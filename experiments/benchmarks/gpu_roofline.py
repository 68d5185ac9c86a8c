"""Benchmark: CUDA-measured latency of ofa_mbv3 subnets against the roofline estimate of the
matching GPU profile (the check the hardware issue asks for where a GPU is present).

For ``--archs`` random subnets (128-224 px) plus the largest and smallest: latency measured on the
local GPU (torch, the profile's precision, CUDA-synchronised, median of repeats) and the roofline
estimate. Prints JSON: per-arch pairs, the median ratio estimate/measured with its IQR, Spearman
between the two, the device name and the profile. Without a usable GPU it prints
``{"skipped": REASON}`` and exits 0.

    python experiments/benchmarks/gpu_roofline.py [--archs 20] [--profile h100]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from hw_profiles import cost_model_for, get_profile
from hw_profiles.measured import CudaMeasuredCostModel, gpu_unavailable_reason
from kernels.cuda import cuda_device_name
from predictors.metrics import spearman
from search_spaces import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--profile", help="default: the shipped gpu profile matching the local card")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [args.profile] if args.profile else ["a100", "h100", "rtx-4090"]
    reasons = {n: gpu_unavailable_reason(get_profile(n)) for n in names}
    usable = [n for n, r in reasons.items() if r is None]
    if not usable:
        print(json.dumps({"benchmark": "gpu_roofline", "skipped": reasons}, indent=2))
        return
    import nas

    profile = get_profile(usable[0])
    space = get_space("ofa_mbv3")
    supernet = nas.create_supernet("ofa_mbv3", seed=args.seed)
    measured_model = CudaMeasuredCostModel(profile, build=supernet.extract,
                                           input_shape=lambda a: (1, *space.input_shape(a)), repeats=50)
    roofline = cost_model_for(profile)
    rng = np.random.default_rng(args.seed)
    archs = [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(args.archs))]
    rows = []
    for arch in archs:
        measured = measured_model.measure(arch)["latency_ms"]
        estimate = roofline.metrics(space.layers(arch))["latency_ms"]
        rows.append({"arch_id": arch.arch_id, "r": arch["r"], "measured_ms": measured.value,
                     "measured_iqr_ms": measured.spread, "roofline_ms": estimate.value})
    ratio = np.array([r["roofline_ms"] / r["measured_ms"] for r in rows])
    q25, q50, q75 = np.percentile(ratio, [25, 50, 75])
    print(json.dumps({
        "benchmark": "gpu_roofline", "device": cuda_device_name(), "profile": profile.ref,
        "precision": profile.spec.default_precision, "archs": len(rows),
        "ratio_roofline_over_measured": {"median": round(float(q50), 3), "iqr": round(float(q75 - q25), 3)},
        "spearman": round(spearman([r["measured_ms"] for r in rows], [r["roofline_ms"] for r in rows]), 3),
        "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

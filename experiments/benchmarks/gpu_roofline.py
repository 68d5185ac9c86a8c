"""Benchmark: CUDA-measured latency of ofa_mbv3 subnets against the roofline estimate of the
matching GPU profile (the check the hardware issue asks for where a GPU is present).

For ``--archs`` random subnets (128-224 px) plus the largest and smallest: latency measured on the
local GPU (torch, the profile's precision, CUDA-synchronised, median of repeats) two ways, CUDA
graph replay (kernels back to back: what the roofline models) and eager PyTorch (per-op dispatch
included), and the roofline estimate. Prints JSON: per-arch rows, per mode the median ratio
estimate/measured with its IQR and Spearman, the device name and the profile. Without a usable GPU it prints
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
    shape = lambda a: (1, *space.input_shape(a))  # noqa: E731
    models = {mode: CudaMeasuredCostModel(profile, build=supernet.extract, input_shape=shape, repeats=50,
                                          graph=(mode == "graph"))
              for mode in ("graph", "eager")}
    roofline = cost_model_for(profile)
    rng = np.random.default_rng(args.seed)
    archs = [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(args.archs))]
    rows = []
    for arch in archs:
        row = {"arch_id": arch.arch_id, "r": arch["r"],
               "roofline_ms": roofline.metrics(space.layers(arch))["latency_ms"].value}
        for mode, model in models.items():
            measured = model.measure(arch)["latency_ms"]
            row[f"{mode}_ms"], row[f"{mode}_iqr_ms"] = measured.value, measured.spread
        rows.append(row)
    summary = {}
    for mode in models:
        ratio = np.array([r["roofline_ms"] / r[f"{mode}_ms"] for r in rows])
        q25, q50, q75 = np.percentile(ratio, [25, 50, 75])
        summary[mode] = {"backend": models[mode].backend,
                         "ratio_roofline_over_measured": {"median": round(float(q50), 3), "iqr": round(float(q75 - q25), 3)},
                         "spearman": round(spearman([r[f"{mode}_ms"] for r in rows], [r["roofline_ms"] for r in rows]), 3),
                         "median_measured_ms": round(float(np.median([r[f"{mode}_ms"] for r in rows])), 4)}
    print(json.dumps({
        "benchmark": "gpu_roofline", "device": cuda_device_name(), "profile": profile.ref,
        "precision": profile.spec.default_precision, "archs": len(rows),
        "median_roofline_ms": round(float(np.median([r["roofline_ms"] for r in rows])), 4),
        "measured": summary, "rows": rows}, indent=2))

if __name__ == "__main__":
    main()

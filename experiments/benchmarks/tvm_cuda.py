"""Benchmark: a TVM CUDA library built here (nvcc, no GPU needed) and run on a GPU machine.

Two phases, as a user with a build workstation and a GPU box would run them:

    python experiments/benchmarks/tvm_cuda.py build DIR [--arch sm_90]   # needs TVM + nvcc
    python experiments/benchmarks/tvm_cuda.py run DIR                    # needs TVM + a CUDA GPU

``build`` takes the largest ``tiny_mbv3`` subnet and the demo ``ofa_mbv3`` subnet at 160 px
(Kaiming weights and random BN statistics, so parity means something), exports each with
``nas.export_subnet`` (torch weights), writes the ONNX model, builds the TVM library for
``cuda``/``--arch`` with dlight's untuned GPU schedules (``kernels.tvm.targets``), and stores a
seeded input with the CPU torch output. ``run`` reloads each library on ``tvm.cuda()``, checks
parity against that CPU output, and times TVM CUDA, torch CUDA fp32 (no TF32) and fp16 side by
side (interleaved, CUDA-synchronised). Prints one JSON object; without a GPU ``run`` prints
``{"skipped": REASON}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SUBNETS = (("tiny_mbv3", "tiny_mbv3", None), ("ofa_mbv3@160", "ofa_mbv3", 160))


def build(root: Path, arch_name: str, seed: int) -> dict:
    import torch

    import nas
    from kernels.onnx_export import export_onnx
    from kernels.tvm.build import import_onnx
    from kernels.tvm.targets import TargetSpec, build_for, export_for
    from supernets.testing import enliven

    root.mkdir(parents=True, exist_ok=True)
    spec = TargetSpec("cuda", threads=1, arch=arch_name)
    summary = {}
    for label, space_name, resolution in SUBNETS:
        space = nas.get_space(space_name)
        if resolution is None:
            arch = space.largest()
        else:
            demo = json.loads((Path(__file__).parents[1] / "archs" / "ofa_mbv3_demo.json").read_text())
            arch = space.parse({**demo, "r": resolution})
        supernet = nas.create_supernet(space_name, seed=seed)
        enliven(supernet, arch, seed=seed)
        folder = root / label
        nas.export_subnet(supernet, arch, folder, formats=("torch",), weights="random-init")
        module = supernet.extract(arch).eval()
        x = torch.randn(1, *space.input_shape(arch), generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            np.save(folder / "ref_cpu.npy", module(x).numpy())
        np.save(folder / "input.npy", x.numpy())
        onnx_path = export_onnx(module, x, folder / "model.onnx")
        start = time.perf_counter()
        executable = build_for(import_onnx(onnx_path), spec)
        export_for(executable, spec, folder / "model_cuda.so")
        summary[label] = {"build_s": round(time.perf_counter() - start, 2), "target_arch": arch_name}
    return summary


def run(root: Path, repeats: int) -> dict:
    from kernels.cuda import CudaTorchRunner, cuda_device_name, cuda_unavailable_reason
    from kernels.timing import measure

    reason = cuda_unavailable_reason()
    if reason is not None:
        return {"skipped": reason}
    import torch
    import tvm

    import nas
    from kernels.tvm.targets import run_cuda_library

    results = {}
    for label, _, _ in SUBNETS:
        folder = root / label
        x = np.load(folder / "input.npy")
        ref = np.load(folder / "ref_cpu.npy")
        module = nas.load_subnet(folder)
        tvm_timing, out = run_cuda_library(folder / "model_cuda.so", x, warmup=20, repeats=repeats)
        tvm_diff = float(np.abs(out - ref).max())

        example = torch.from_numpy(x)
        fp32 = CudaTorchRunner(module, example, dtype="fp32")
        fp16 = CudaTorchRunner(module, example, dtype="fp16")
        fp32_diff = float(np.abs(fp32.run(x) - ref).max())
        timings = {"tvm_cuda": tvm_timing,
                   **measure({"torch_cuda_fp32": fp32, "torch_cuda_fp16": fp16}, warmup=20, repeats=repeats, threads=1)}
        results[label] = {
            "parity_max_abs_diff": {"tvm_cuda": tvm_diff, "torch_cuda_fp32": fp32_diff},
            "output_magnitude": float(np.abs(ref).max()),
            **{f"{name}_ms": {"median": round(t.median_s * 1e3, 4), "iqr": round(t.iqr_s * 1e3, 4)}
               for name, t in timings.items()},
        }
        results[label]["ratio_tvm_over_torch_fp32"] = round(
            timings["tvm_cuda"].median_s / timings["torch_cuda_fp32"].median_s, 3)
    return {"device": cuda_device_name(), "torch": torch.__version__, "tvm": tvm.__version__,
            "provenance": "measured", "repeats": repeats, "subnets": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("build", "run"))
    parser.add_argument("dir", type=Path)
    parser.add_argument("--arch", default="sm_90", help="CUDA compute capability to build for")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    result = build(args.dir, args.arch, args.seed) if args.phase == "build" else run(args.dir, args.repeats)
    print(json.dumps({"benchmark": f"tvm_cuda_{args.phase}", **result}, indent=1))


if __name__ == "__main__":
    main()

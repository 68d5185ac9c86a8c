"""Shared part of the TVM benchmarks: a seeded random ofa_mbv3 subnet as a float ONNX file and an int8 QDQ file."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class SubnetFiles:
    arch_id: str
    shape: tuple
    float_path: Path
    quantized: object  # kernels.quantize.QuantizedOnnx


def subnet_files(space, i: int, r: int, work: Path, rng, arch=None) -> SubnetFiles:
    """Subnet ``i`` (architecture drawn from ``rng`` at ``r`` px, or ``arch`` as given; weights seeded by ``i``)
    exported to ONNX and quantized by onnxruntime (U8S8, per-channel weights, MinMax over 16 seeded normal
    images)."""
    from kernels.onnx_export import export_onnx
    from kernels.quantize import quantize_module
    from supernets import create_supernet
    from supernets.testing import enliven

    arch = arch if arch is not None else space.with_resolution(space.sample(rng), r)
    supernet = create_supernet(space.name, seed=i)
    enliven(supernet, arch, seed=i)
    module = supernet.extract(arch).eval()
    shape = (1, *space.input_shape(arch))
    calibration = np.random.default_rng(i).standard_normal((16, *shape[1:])).astype(np.float32)
    quantized = quantize_module(module, torch.zeros(shape), work / f"q{i}.onnx", calibration, dynamic_batch=False)
    return SubnetFiles(arch.arch_id, shape, export_onnx(module, torch.zeros(shape), work / f"f{i}.onnx"), quantized)


def subnet_arguments(doc: str, *, tune: bool = False) -> argparse.Namespace:
    """The command line of a benchmark over seeded subnets: ``--subnets``, ``--resolution``, ``--repeats``, and
    with ``tune`` ``--tune-minutes`` (per subnet, default 0)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--subnets", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=30)
    if tune:
        parser.add_argument("--tune-minutes", type=float, default=0.0)
    return parser.parse_args()

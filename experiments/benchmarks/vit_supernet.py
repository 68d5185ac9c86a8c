"""Benchmark: the elastic ViT supernet (tiny_vit) beside tiny_mbv3 at equal training wall time.

1. Training: tiny_vit with the sandwich rule and its recipe (``experiments/vit_quickstart.toml``'s
   [train]: AdamW, warm-up) and tiny_mbv3 with its quick-start recipe, each for as many epochs as
   fit in ``--budget-s`` on ``mnist-mini``; then the largest, smallest and 5 fixed random subnets'
   top-1 on the validation split (BN recalibrated for tiny_mbv3; a ViT has no BN, so both columns
   agree for it).
2. Extract parity: max |supernet(arch) - extract(arch)(x)| over ``--parity-archs`` random enlivened
   archs, and whether the extracted module's MACs/params equal the layer table's.
3. Train-step overhead: supernet vs. extracted step time for 3 subnets (target <= 1.10x).

Prints JSON with the machine and its load. Run with nothing else on the machine.

    python experiments/benchmarks/vit_supernet.py [--budget-s 600] [--parity-archs 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from extract_parity import bench_space as parity
from nas.pipeline.config import PipelineConfig
from nas.training.config import TrainConfig
from train_overhead import bench_space as overhead
from train_supernet import run_strategy

EXPERIMENTS = Path(__file__).resolve().parents[1]


def recipes() -> dict[str, TrainConfig]:
    """The two recipes compared: the ViT and the CNN quick starts' [train] tables."""
    return {"tiny_vit": PipelineConfig.from_toml(EXPERIMENTS / "vit_quickstart.toml").train,
            "tiny_mbv3": PipelineConfig.from_toml(EXPERIMENTS / "quickstart.toml").train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=600.0)
    parser.add_argument("--parity-archs", type=int, default=50)
    parser.add_argument("--overhead-repeats", type=int, default=25)
    parser.add_argument("--spaces", default="tiny_vit,tiny_mbv3", help="which recipes to train")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    training = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.spaces.split(","):
            config = recipes()[name]
            training[name] = {"recipe": {k: v for k, v in config.to_dict().items()
                                         if k in ("optimizer", "lr", "weight_decay", "warmup_epochs", "batch_size")},
                              **run_strategy("sandwich", args.budget_s, Path(tmp), base=config)}
    print(json.dumps({
        "benchmark": "vit_supernet", "data": "mnist-mini", "budget_s": args.budget_s,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "load_avg_1m_at_end": os.getloadavg()[0]},
        "training": training,
        "extract_parity": parity("tiny_vit", args.parity_archs, 0),
        "train_step_overhead": {"target": "ratio <= 1.10",
                                "tiny_vit": overhead("tiny_vit", 3, args.overhead_repeats, 0),
                                "tiny_mbv3": overhead("tiny_mbv3", 3, args.overhead_repeats, 0)},
    }, indent=2))


if __name__ == "__main__":
    main()

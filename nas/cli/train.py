"""``nas train``: train a once-for-all supernet (also under torchrun for several processes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli._args import number_in
from nas.training.config import OPTIMIZER_NAMES, STRATEGY_NAMES, TrainConfig

RANGES = TrainConfig.RANGES  # a flag has its config key's range


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train a once-for-all supernet (also under torchrun for several "
                                            "processes)")
    p.add_argument("config", nargs="?", help="TOML file with a [train] table; flags override it")
    p.add_argument("--space", help="supernet/space name (default tiny_mbv3; also ofa_mbv3, tiny_vit, autoformer_t)")
    p.add_argument("--data", help="mnist-mini (default, embedded), cifar10:PATH or imagefolder:PATH")
    p.add_argument("--strategy", choices=list(STRATEGY_NAMES), help="sandwich rule or progressive shrinking")
    p.add_argument("--optimizer", choices=list(OPTIMIZER_NAMES), help="sgd (default; Nesterov) or adamw (transformers)")
    p.add_argument("--warmup-epochs", type=number_in(RANGES["warmup_epochs"]),
                   help="linear learning-rate warm-up epochs before the cosine schedule (default 0)")
    p.add_argument("--epochs", type=number_in(RANGES["epochs"]))
    p.add_argument("--batch-size", type=number_in(RANGES["batch_size"]))
    p.add_argument("--lr", type=number_in(RANGES["lr"]))
    p.add_argument("--weight-decay", type=number_in(RANGES["weight_decay"]))
    p.add_argument("--seed", type=number_in(RANGES["seed"]))
    p.add_argument("--steps-per-epoch", type=number_in(RANGES["steps_per_epoch"]),
                   help="cap on steps per epoch (0: full pass)")
    p.add_argument("--out", required=True, help="output directory (checkpoint, logs)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from nas.training.train import train

    config = TrainConfig.from_toml(Path(args.config)) if args.config else TrainConfig()
    config = config.with_overrides(
        space=args.space, data=args.data, strategy=args.strategy, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, steps_per_epoch=args.steps_per_epoch, optimizer=args.optimizer,
        warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay)
    train(config, out=Path(args.out), resume=args.resume, progress=not args.no_progress)
    return 0

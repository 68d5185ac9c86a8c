"""Training an elastic ViT through the shared strategies, loop and config: sandwich and progressive
shrinking on tiny_vit, AdamW's no-decay groups, warm-up, config errors and hash stability."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nas.cli import main
from nas.training.config import ConfigError, TrainConfig
from nas.training.train import build_optimizer
from supernets import create_supernet
from supernets.training import ProgressiveShrinking, SandwichRule, cosine_lr, scheduled_lr, train_steps
from supernets.training.strategies import Stage

# TrainConfig.hash of these settings, computed with the code before optimizer/warmup_epochs existed
# (HEAD e4e5f52): runs saved then must still resume.
HASHES_BEFORE = {(): "97fa80fc323b017e", (("strategy", "ps"),): "615829e9b4c47871",
                 (("seed", 1),): "60c12be84ef435ce",
                 (("space", "tiny_vit"), ("lr", 0.001), ("weight_decay", 0.05)): "9714898fbb2bb911"}


def batch(n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)


class Recorder:
    """Records the archs a supernet is set to (every run is followed by the restore)."""

    def __init__(self, supernet):
        self.seen, original = [], supernet._activate

        def record(arch):
            self.seen.append(arch)
            original(arch)

        supernet._activate = record


def test_sandwich_trains_tiny_vit_and_lowers_the_loss_on_a_fixed_batch():
    supernet = create_supernet("tiny_vit", seed=0)
    config = TrainConfig(space="tiny_vit", optimizer="adamw", lr=2e-3, weight_decay=0.05)
    strategy = SandwichRule(n_random=1)
    plan = strategy.plan(40, supernet.space)
    assert plan[0].dims == supernet.space.ELASTIC_DIMS
    optimizer = build_optimizer(supernet, config)
    x, y = batch(32)
    common = dict(base_lr=config.lr, global_step=0, device=torch.device("cpu"), warmup_steps=2)
    step, first = train_steps(supernet, strategy, plan, [(x, y)] * 3, optimizer, rng=np.random.default_rng(0), **common)
    common["global_step"] = step
    step, last = train_steps(supernet, strategy, plan, [(x, y)] * 25, optimizer, rng=np.random.default_rng(1), **common)
    assert step == 28 and np.isfinite(last) and last < first - 0.1, (first, last)


def test_sandwich_step_runs_largest_then_smallest_of_the_vit_space():
    supernet = create_supernet("tiny_vit", seed=0)
    space, recorder = supernet.space, Recorder(supernet)
    x, y = batch()
    SandwichRule(n_random=2).step(supernet, x, y, SandwichRule().plan(4, space)[0], np.random.default_rng(0))
    ran = recorder.seen[0::2]
    assert len(ran) == 4 and ran[0] == space.largest() and ran[1] == space.smallest()
    assert supernet.active_arch == space.largest()
    assert supernet.layers[0].qkv.weight.grad is not None


def test_progressive_shrinking_opens_the_vit_stages_in_order():
    supernet = create_supernet("tiny_vit", seed=0)
    space = supernet.space
    strategy = ProgressiveShrinking(fractions=(0.25, 0.25, 0.25, 0.25))
    plan = strategy.plan(16, space)
    assert [s.name for s in plan] == ["full", "mlp", "heads", "depth"]
    assert plan[0].start == 0 and plan[-1].end == 16
    x, y = batch()
    assert np.isfinite(strategy.step(supernet, x, y, plan[0], np.random.default_rng(0)))
    with pytest.raises(RuntimeError, match="set_teacher"):
        strategy.step(supernet, x, y, plan[1], np.random.default_rng(0))
    strategy.set_teacher(supernet.extract(space.largest()))
    recorder, rng, largest = Recorder(supernet), np.random.default_rng(1), space.largest()
    for _ in range(6):
        assert np.isfinite(strategy.step(supernet, x, y, plan[1], rng))  # mlp: only mlp ratios vary
    mlp_stage = recorder.seen[0::2]
    fixed = [n for n in largest.to_dict() if not n.startswith("mlp_")]
    assert all(a[n] == largest[n] for a in mlp_stage for n in fixed)
    assert len({a["mlp_0"] for a in mlp_stage}) > 1
    recorder.seen.clear()
    for _ in range(6):
        strategy.step(supernet, x, y, plan[3], rng)
    depth_stage = recorder.seen[0::2]
    assert len({(a["depth"], a["embed"], a["patch"]) for a in depth_stage}) > 1


def test_progressive_shrinking_without_a_space_keeps_the_mobilenet_stages():
    assert ProgressiveShrinking().plan(8) == ProgressiveShrinking().plan(8, create_supernet("tiny_mbv3").space)
    assert [s.dims for s in ProgressiveShrinking().plan(4)] == [("r",), ("r", "ks"), ("r", "ks", "d"),
                                                                 ("r", "ks", "d", "e")]


def test_adamw_leaves_norms_biases_cls_token_and_position_embeddings_undecayed():
    supernet = create_supernet("tiny_vit", seed=0)
    optimizer = build_optimizer(supernet, TrainConfig(space="tiny_vit", optimizer="adamw", weight_decay=0.05))
    assert isinstance(optimizer, torch.optim.AdamW)
    names = {id(p): n for n, p in supernet.named_parameters()}
    decay, no_decay = ({names[id(p)] for p in g["params"]} for g in optimizer.param_groups)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]
    assert {"embed.cls_token", "embed.pos_embed.patch4", "embed.pos_embed.patch7", "norm.weight", "norm.bias",
            "layers.0.norm1.weight", "layers.0.qkv.bias", "layers.3.fc2.bias", "embed.proj.patch4.bias"} <= no_decay
    assert decay == {n for n in names.values() if n.endswith("weight") and "norm" not in n}
    assert decay | no_decay == set(names.values()) and not decay & no_decay


def test_sgd_groups_of_a_cnn_are_unchanged():
    supernet = create_supernet("tiny_mbv3", seed=0)
    optimizer = build_optimizer(supernet, TrainConfig())
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]
    rule = [p for n, p in supernet.named_parameters() if p.ndim <= 1 or "transforms" in n]
    assert [id(p) for p in optimizer.param_groups[1]["params"]] == [id(p) for p in rule]


def test_warmup_scales_the_cosine_schedule_linearly_and_zero_warmup_is_the_cosine():
    stage = Stage("sandwich", 0, 100, ())
    assert [scheduled_lr(0.1, s, stage) for s in range(0, 100, 7)] == [cosine_lr(0.1, s, 100) for s in range(0, 100, 7)]
    assert scheduled_lr(0.1, 0, stage, warmup_steps=10) == pytest.approx(0.01 * cosine_lr(1.0, 0, 100))
    assert scheduled_lr(0.1, 4, stage, warmup_steps=10) == pytest.approx(0.5 * cosine_lr(0.1, 4, 100))
    assert scheduled_lr(0.1, 10, stage, warmup_steps=10) == cosine_lr(0.1, 10, 100)


@pytest.mark.parametrize(("settings", "expected"), list(HASHES_BEFORE.items()))
def test_hash_of_configs_without_the_new_settings_is_unchanged(settings, expected):
    assert TrainConfig(**dict(settings)).hash == expected


def test_new_settings_change_the_hash_only_away_from_their_defaults():
    base = TrainConfig()
    assert TrainConfig(optimizer="sgd", warmup_epochs=0).hash == base.hash
    assert len({base.hash, TrainConfig(optimizer="adamw").hash, TrainConfig(warmup_epochs=1).hash}) == 3
    old = {k: v for k, v in base.to_dict().items() if k not in ("optimizer", "warmup_epochs")}  # a saved config
    assert TrainConfig.comparable(old) == TrainConfig.comparable(base.to_dict())
    assert TrainConfig.from_dict(old).hash == base.hash
    assert base.differences(old) == [] and TrainConfig(optimizer="adamw", seed=2).differences(old) == ["optimizer",
                                                                                                       "seed"]


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"optimizer": "adam"}, "optimizer='adam' is not one of ['sgd', 'adamw']"),
        ({"warmup_epochs": -1}, "warmup_epochs must be an integer >= 0 and <= 100000, got -1"),
        ({"warmup_epochs": 9, "epochs": 8}, "warmup_epochs=9 is more than epochs=8"),
    ],
)
def test_bad_new_settings_are_one_line_config_errors(settings, fragment):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**settings)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_toml_new_settings_are_typed(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\noptimizer = "adamw"\nwarmup_epochs = 2\n')
    assert (TrainConfig.from_toml(path).optimizer, TrainConfig.from_toml(path).warmup_epochs) == ("adamw", 2)
    path.write_text("[train]\nwarmup_epochs = 1.5\n")
    with pytest.raises(ConfigError, match="warmup_epochs must be an integer, got 1.5"):
        TrainConfig.from_toml(path)


def test_nas_train_runs_tiny_vit_with_adamw_and_warmup_and_refuses_another_optimizer_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--space", "tiny_vit", "--data", "mnist-mini", "--epochs", "1", "--steps-per-epoch", "3",
            "--batch-size", "32", "--optimizer", "adamw", "--lr", "0.002", "--weight-decay", "0.05",
            "--warmup-epochs", "1", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["space"], saved["optimizer"], saved["warmup_epochs"], saved["weight_decay"]) == (
        "tiny_vit", "adamw", 1, 0.05)
    capsys.readouterr()
    assert main([*argv[:-2], "--optimizer", "sgd", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "settings differ from the checkpoint's (optimizer)" in err and err.count("\n") == 1

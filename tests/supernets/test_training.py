"""Training strategies, the loop and evaluation, on tiny_mbv3 with synthetic batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from supernets import create_supernet
from supernets.evaluate import EvalCache, evaluate, evaluation_setting
from supernets.training import ProgressiveShrinking, SandwichRule, cosine_lr, train_steps
from supernets.training.losses import soft_cross_entropy


def batch(n=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)


class RecordingSupernet:
    """Wraps a supernet's set_active to record which archs a step ran."""

    def __init__(self, supernet):
        self.seen = []
        original = supernet._activate

        def record(arch):
            self.seen.append(arch)
            original(arch)

        supernet._activate = record


def test_sandwich_step_runs_largest_smallest_and_n_random_and_restores_active_arch():
    supernet = create_supernet("tiny_mbv3", seed=0)
    space = supernet.space
    before = supernet.active_arch
    recorder = RecordingSupernet(supernet)
    x, y = batch()
    loss = SandwichRule(n_random=2).step(supernet, x, y, SandwichRule().plan(10)[0], np.random.default_rng(0))
    assert np.isfinite(loss) and loss > 0
    ran = recorder.seen[0::2]  # every active(arch) is followed by the restore
    assert len(ran) == 4
    assert ran[0].arch_id == space.with_resolution(space.largest(), ran[0]["r"]).arch_id
    assert ran[1].arch_id == space.with_resolution(space.smallest(), ran[0]["r"]).arch_id
    assert len({a["r"] for a in ran}) == 1  # one resolution per step
    assert supernet.active_arch == before
    assert supernet.stem[0].weight.grad is not None


def test_progressive_shrinking_plan_covers_every_step_in_order():
    plan = ProgressiveShrinking().plan(10)
    assert [s.name for s in plan] == ["full", "kernel", "depth", "expand"]
    assert plan[0].start == 0 and plan[-1].end == 10
    assert all(a.end == b.start for a, b in zip(plan, plan[1:]))
    with pytest.raises(ValueError, match="summing to 1"):
        ProgressiveShrinking(fractions=(0.5, 0.5, 0.5, 0.5))


def test_progressive_shrinking_samples_only_the_open_dimensions_and_needs_a_teacher():
    supernet = create_supernet("tiny_mbv3", seed=0)
    space = supernet.space
    strategy = ProgressiveShrinking()
    kernel_stage = strategy.plan(8)[1]
    x, y = batch()
    with pytest.raises(RuntimeError, match="set_teacher"):
        strategy.step(supernet, x, y, kernel_stage, np.random.default_rng(0))
    strategy.set_teacher(supernet.extract(space.largest()))
    recorder = RecordingSupernet(supernet)
    rng = np.random.default_rng(1)
    for _ in range(5):
        strategy.step(supernet, x, y, kernel_stage, rng)
    largest = space.largest()
    for arch in recorder.seen[0::2]:
        assert all(arch[f"e_{i}"] == largest[f"e_{i}"] for i in range(space.n_slots))
        assert all(arch[f"d_{s}"] == largest[f"d_{s}"] for s in range(len(space.stages)))
    assert len({arch["ks_0"] for arch in recorder.seen[0::2]} | {3, 5, 7}) == 3


def test_soft_cross_entropy_is_minimal_at_the_teacher_distribution():
    probs = torch.softmax(torch.randn(4, 10, generator=torch.Generator().manual_seed(0)), dim=1)
    at_teacher = soft_cross_entropy(probs.log(), probs)
    elsewhere = soft_cross_entropy(torch.zeros(4, 10), probs)
    assert at_teacher < elsewhere


def test_cosine_lr_schedule():
    assert cosine_lr(0.1, 0, 100) == pytest.approx(0.1)
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0)


def test_train_steps_reduces_loss_on_a_fixed_batch():
    supernet = create_supernet("tiny_mbv3", seed=0)
    strategy = SandwichRule(n_random=0)
    plan = strategy.plan(30)
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.05, momentum=0.9)
    x, y = batch(32)
    step, loss_first = train_steps(supernet, strategy, plan, [(x, y)] * 3, optimizer, base_lr=0.05,
                                   rng=np.random.default_rng(0), global_step=0, device=torch.device("cpu"))
    step, loss_last = train_steps(supernet, strategy, plan, [(x, y)] * 20, optimizer, base_lr=0.05,
                                  rng=np.random.default_rng(1), global_step=step, device=torch.device("cpu"))
    assert step == 23
    assert loss_last < loss_first


def test_evaluate_recalibrates_restores_bn_and_caches(tmp_path):
    supernet = create_supernet("tiny_mbv3", seed=0)
    arch = supernet.space.smallest()
    x, y = batch(16)
    bn = supernet.stem[1]
    before = bn.running_mean.clone()
    cache = EvalCache(checkpoint_hash="abc", data="synthetic", path=tmp_path / "cache.json")
    result = evaluate(supernet, arch, [(x, y)], calib_batches=[(x, y)], n_calib_batches=1, cache=cache)
    assert 0.0 <= result.top1 <= 1.0 and result.n == 16 and result.bn_recalibrated
    torch.testing.assert_close(bn.running_mean, before)
    assert supernet.training  # mode restored
    # second call is served from the cache, even from a fresh cache object reading the file
    reread = EvalCache(checkpoint_hash="abc", data="synthetic", path=tmp_path / "cache.json")
    assert reread.get(arch.arch_id, evaluation_setting(1)) == result
    hit = evaluate(supernet, arch, [], calib_batches=[(x, y)], n_calib_batches=1, cache=reread)
    assert hit == result and hit.cached and not result.cached and hit.measured_at == result.measured_at
    other = EvalCache(checkpoint_hash="other", data="synthetic", path=tmp_path / "cache.json")
    assert other.get(arch.arch_id, evaluation_setting(1)) is None


@pytest.mark.parametrize("results", [
    [1, 2], {"a": {"top1": "x", "loss": 0.1, "n": 1, "bn_recalibrated": True}},
    {"a": {"top1": 7.0, "loss": 0.1, "n": 10, "bn_recalibrated": True}},
    {"a": {"top1": 0.5, "loss": float("nan"), "n": 10, "bn_recalibrated": True}},
    {"a": {"top1": 0.5, "loss": 0.1, "n": -3, "bn_recalibrated": True}},
    {"a": {"top1": 0.5, "loss": 0.1, "n": 3}},
])
def test_a_forged_eval_cache_is_ignored_and_overwritten(tmp_path, results):
    import json

    from supernets.evaluate import EvalCache, EvalResult

    path = tmp_path / "eval_cache.json"
    path.write_text(json.dumps({"checkpoint_hash": "h", "data": "d", "results": results}))
    cache = EvalCache(checkpoint_hash="h", data="d", path=path)
    assert len(cache) == 0 and cache.get("a") is None
    cache.put("b", EvalResult(top1=0.5, loss=0.7, n=10, bn_recalibrated=True))
    assert EvalCache(checkpoint_hash="h", data="d", path=path).get("b").top1 == 0.5

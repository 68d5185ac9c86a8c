"""``nas tune-space`` and ``nas export --tune-minutes``: real TVM tuning of a very small space."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _never_slower import assert_never_slower

from nas.cli import main
from nas.export.tuning import cache_root, covering_archs, default_db_dir, space_workloads, workload_module
from search_spaces import get_space, list_spaces, register_space
from search_spaces.mobilenet_v3 import MobileNetV3Space, StageSpec

SPACE = "tune_test_mbv3"


def _space(*, num_classes: int = 10, in_channels: int = 1) -> MobileNetV3Space:
    """One SE + h-swish stage, depth 1 or 2: the block kinds of tiny_mbv3 in ~12 TVM tasks."""
    return MobileNetV3Space(name=SPACE, stages=[StageSpec(8, 2, 2, "hswish", True)], kernel_sizes=(3,),
                            expand_ratios=(3,), depths=(1, 2), resolutions=(24,), stem_width=8, first_block_width=8,
                            final_expand_width=16, last_channel=16, num_classes=num_classes, in_channels=in_channels)


if SPACE not in list_spaces():
    from supernets import register_supernet
    from supernets.mbv3 import OFAMobileNetV3Supernet

    register_space(SPACE, _space)
    register_supernet(SPACE, lambda *, seed=0, **kw: OFAMobileNetV3Supernet(space=_space(**kw), seed=seed))


def test_cache_location(monkeypatch, tmp_path):
    from hw_profiles import get_profile

    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "a"
    monkeypatch.delenv("HWNAS_CACHE_DIR")
    assert cache_root() == tmp_path / "x" / "hwnas"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert cache_root() == tmp_path / "h" / ".cache" / "hwnas"
    space = get_space("tiny_mbv3")
    assert default_db_dir(get_profile("host-cpu"), space).relative_to(cache_root()).parts == (
        "tvm-db", "host-cpu@1", f"tiny_mbv3@{space.version}")


@pytest.mark.parametrize("name,r", [("tiny_mbv3", 24), ("ofa_mbv3", 160)])
def test_workloads_cover_random_subnets(name, r):
    space = get_space(name)
    workloads = set(space_workloads(space, (r,)))
    assert len(covering_archs(space, (r,))) == 9
    rng = np.random.default_rng(0)
    for _ in range(200):
        arch = space.with_resolution(space.sample(rng), r)
        assert {row.workload for row in space.layers(arch)} <= workloads


@pytest.mark.parametrize("name,n_archs", [("tiny_vit", 2 * 4 * 3), ("autoformer_t", 3 * 1)])
def test_vit_covering_archs_hold_every_layer_workload(name, n_archs):
    """Full-depth archs carrying every (heads, MLP ratio) pair per (patch, embedding): 9 pairs over
    tiny_vit's 4 layer slots take 3 archs; autoformer_t's 4 pairs fit in one 14-layer arch."""
    space = get_space(name)
    r = space.resolution
    archs = covering_archs(space, (r,))
    assert len(archs) == n_archs
    workloads = set(space_workloads(space, (r,)))
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert {row.workload for row in space.layers(space.sample(rng))} <= workloads


def test_linear_workload_takes_the_pooled_map():
    space = get_space("tiny_mbv3")
    linear = [w for w in space_workloads(space, (24,)) if w.op == "linear"][0]
    module, shape = workload_module(linear)
    assert shape == (1, linear.in_channels, 1, 1)


def test_a_per_token_linear_workload_keeps_its_tokens():
    import torch

    space = get_space("tiny_vit")
    qkv = next(w for w in space_workloads(space, (28,)) if w.op == "linear" and w.in_hw != (1, 1))
    module, shape = workload_module(qkv)
    with torch.no_grad():
        out = module(torch.zeros(shape))
    assert out.numel() == qkv.out_elements > qkv.out_channels


@pytest.mark.parametrize("argv,message", [
    (["tune-space", "nope", "--device", "host-cpu", "--minutes", "1"], "unknown"),
    (["tune-space", "tiny_mbv3", "--device", "nope", "--minutes", "1"], "unknown device profile"),
    (["tune-space", "tiny_mbv3", "--device", "a100", "--minutes", "1"], "needs a cpu profile"),
    (["tune-space", "tiny_mbv3", "--device", "host-cpu", "--minutes", "0"], "--minutes must be > 0"),
    (["tune-space", "tiny_mbv3", "--device", "host-cpu", "--minutes", "-2"], "--minutes must be > 0"),
    (["tune-space", "tiny_mbv3", "--device", "host-cpu", "--minutes", "1", "--resolutions", "99"], "not in space"),
    (["export", "--space", "tiny_mbv3", "--arch", "{}", "--out", "OUT", "--tune-minutes", "-1"], "--tune-minutes"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path):
    argv = [str(tmp_path / "o") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


@pytest.mark.tvm
@pytest.mark.slow
def test_tune_space_reaches_full_hit_rate_and_export_uses_it(tmp_path, capsys):
    db = tmp_path / "db"
    assert main(["tune-space", SPACE, "--device", "host-cpu", "--minutes", "1.5", "--db", str(db), "--check", "3",
                 "--max-trials-per-task", "2",
                 "--json", "--no-progress", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tuning"]["tasks_covered"] == report["tasks"] > 0
    assert [c["hit_rate"] for c in report["subnets"]] == [1.0, 1.0, 1.0]
    assert report["hit_rate_min"] == 1.0 and report["flops_coverage_mean"] == 1.0

    space = get_space(SPACE)
    arch = space.sample(np.random.default_rng(5))
    out = tmp_path / "export"
    assert main(["export", "--space", SPACE, "--arch", arch.to_json(), "--format", "tvm", "--out", str(out),
                 "--tuning-db", str(db), "--repeats", "2", "--quiet", "--json"]) == 0
    saved = json.loads((out / "report.json").read_text())
    assert saved["tuning"]["tasks_hit"] == saved["tuning"]["tasks_total"] > 0
    # the never-slower rule (kernels.tvm.select): records only where the subnet gets faster, both timings reported
    assert_never_slower(saved["tvm_schedule"], saved["tuning"])
    assert saved["tuning"]["flops_coverage"] == 1.0 and saved["tuning"]["db"] == str(db)
    assert saved["formats"]["tvm"]["parity"]["max_abs_diff"] <= saved["formats"]["tvm"]["parity"]["tolerance"]


@pytest.mark.tvm
def test_export_without_a_database_is_default_scheduled(tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))
    space = get_space(SPACE)
    out = tmp_path / "export"
    assert main(["export", "--space", SPACE, "--arch", space.smallest().to_json(), "--format", "tvm",
                 "--out", str(out), "--repeats", "2", "--quiet"]) == 0
    saved = json.loads((out / "report.json").read_text())
    assert saved["tvm_schedule"] == "default" and saved["tuning"]["tasks_hit"] == 0
    assert not (tmp_path / "cache").exists()  # compiling never creates a database

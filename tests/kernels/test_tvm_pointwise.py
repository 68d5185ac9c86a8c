"""The VNNI schedule rule for int8 pointwise convolutions (kernels.tvm.pointwise): real TVM builds on this CPU,
exact integer results against numpy, padding of maps and channels that do not fill a vector, and the
blocks it must leave to the simple rules."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.tvm import build as tvm_build
from kernels.tvm.pointwise import has_vnni, pixel_vectors, vnni_functions
from kernels.tvm.schedule import default_schedule

pytestmark = [pytest.mark.tvm]
needs_vnni = pytest.mark.skipif(not has_vnni(tvm_build.host_target(1)), reason="this CPU has no AVX-512 VNNI")


def _conv_module(channels, out_channels, height, width, kernel=1, groups=1, seed=0, stride=1):
    """``float32(conv2d(x_u8, W_s8, int32)) * scale`` (a conv and its epilogue, as the int8 rewrite makes
    them) as a Relax module, with its weight and scale."""
    from tvm import relax

    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (out_channels, channels // groups, kernel, kernel)).astype(np.int8)
    scale = rng.uniform(0.5, 2.0, (1, out_channels, 1, 1)).astype(np.float32)
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, channels, height, width), "uint8"))
    with builder.function("main", [x]):
        with builder.dataflow():
            acc = builder.emit(relax.op.nn.conv2d(x, relax.const(w), strides=[stride] * 2, padding=[kernel // 2] * 4,
                                                  groups=groups, out_dtype="int32"))
            out = builder.emit_output(relax.op.multiply(relax.op.astype(acc, "float32"), relax.const(scale)))
        builder.emit_func_output(out)
    return builder.get(), w, scale


def _run(mod, x, *, vnni: bool, threads: int = 2):
    import tvm

    target = tvm_build.host_target(threads)
    scheduled = default_schedule(mod, target, vnni=vnni)
    uses = vnni_functions(scheduled)
    model = tvm_build.TvmModel(tvm_build.build(scheduled, target), threads=threads)
    out = model.invoke(tvm.runtime.tensor(x, model.device))
    return out.numpy(), uses


@needs_vnni
@pytest.mark.parametrize("channels,out_channels,height,width", [
    (8, 24, 12, 12),   # 144 pixels: whole vectors
    (16, 40, 10, 10),  # 100 pixels: the last vector padded
    (6, 12, 5, 5),     # 25 pixels and 6 channels: both padded
    (40, 20, 20, 20),  # 400 pixels: 25 vectors, one per tile
    (12, 18, 8, 8),    # 18 out channels: a 2-channel tile
    (6, 8, 4, 4),      # 16 pixels, 6 channels: only the channels padded
    (12, 7, 8, 8),     # 7 out channels: a 1-channel tile
])
def test_pointwise_convs_on_vnni_are_exact(channels, out_channels, height, width):
    mod, w, scale = _conv_module(channels, out_channels, height, width)
    x = np.random.default_rng(1).integers(0, 256, (1, channels, height, width)).astype(np.uint8)
    expected = np.einsum("oc,chw->ohw", w[:, :, 0, 0].astype(np.int64), x[0].astype(np.int64))[None]
    expected = expected.astype(np.float32) * scale
    got, uses = _run(mod, x, vnni=True)
    assert uses == 1
    np.testing.assert_array_equal(got, expected)
    plain, plain_uses = _run(mod, x, vnni=False)
    assert plain_uses == 0
    np.testing.assert_array_equal(plain, got)


@needs_vnni
@pytest.mark.parametrize("channels,out_channels,height,width,kernel,groups,stride", [
    (8, 8, 12, 12, 3, 8, 1),    # depthwise
    (8, 16, 12, 12, 3, 1, 1),   # a 3x3 conv
    (64, 16, 1, 1, 1, 1, 1),    # squeeze-excite on a 1x1 map: under one vector of pixels
    (8, 16, 12, 12, 1, 1, 2),   # a strided 1x1 conv
    (8, 16, 12, 12, 1, 2, 1),   # a grouped 1x1 conv
])
def test_other_convs_keep_the_simple_rules(channels, out_channels, height, width, kernel, groups, stride):
    mod, _, _ = _conv_module(channels, out_channels, height, width, kernel=kernel, groups=groups, stride=stride)
    x = np.random.default_rng(2).integers(0, 256, (1, channels, height, width)).astype(np.uint8)
    got, uses = _run(mod, x, vnni=True, threads=1)
    assert uses == 0
    np.testing.assert_array_equal(got, _run(mod, x, vnni=False, threads=1)[0])


def test_pixel_vectors_pad_least():
    assert [pixel_vectors(p) for p in (6400, 400, 144, 100, 25, 16)] == [4, 1, 1, 1, 2, 1]
    assert pixel_vectors(1600) == 4 and pixel_vectors(3136) == 4 and pixel_vectors(196) == 1


def test_targets_with_and_without_vnni_are_told_apart():
    import tvm

    assert has_vnni(tvm.target.Target({"kind": "llvm", "mcpu": "cascadelake"}))
    assert not has_vnni(tvm.target.Target({"kind": "llvm", "mcpu": "skylake-avx512"}))  # AVX-512 without VNNI
    assert not has_vnni(tvm.target.Target({"kind": "c"}))


@pytest.mark.parametrize("mcpu,on_vnni", [("cascadelake", 1), ("skylake-avx512", 0)])
def test_the_rule_follows_the_target_on_any_host(mcpu, on_vnni):
    """Scheduled and compiled (not run) for a named CPU, so a host without VNNI checks it too; asking for
    VNNI on a CPU without it gets the simple rules, not an instruction that CPU lacks."""
    import tvm

    mod, _, _ = _conv_module(16, 32, 10, 10)
    target = tvm.target.Target({"kind": "llvm", "mcpu": mcpu, "num-cores": 2})
    scheduled = default_schedule(mod, target, vnni=True)
    assert vnni_functions(scheduled) == on_vnni
    tvm_build.build(scheduled, target)


@needs_vnni
def test_a_rule_that_fails_half_way_leaves_the_simple_rules(monkeypatch):
    """TVM refusing a step after the rule changed its trial schedule: the function is scheduled by the
    simple rules as if the rule had not run (same values, no vpdpbusd)."""
    from kernels.tvm import pointwise

    def half_way(sch, block, **kwargs):
        sch.cache_read(block, 0, "global")  # a change to the trial schedule, then a refusal
        raise RuntimeError("refused")

    mod, _, _ = _conv_module(16, 32, 10, 10)
    x = np.random.default_rng(3).integers(0, 256, (1, 16, 10, 10)).astype(np.uint8)
    expected, _ = _run(mod, x, vnni=False)
    monkeypatch.setattr(pointwise, "schedule_pointwise", half_way)
    got, uses = _run(mod, x, vnni=True)
    assert uses == 0
    np.testing.assert_array_equal(got, expected)

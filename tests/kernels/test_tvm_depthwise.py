"""The channel-blocked depthwise rule (kernels.tvm.depthwise): real TVM builds on this CPU, float results
against torch and against the simple rules, exact integer results against numpy, and the convs it must
leave to the simple rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernels.tvm import build as tvm_build
from kernels.tvm.depthwise import depthwise_functions
from kernels.tvm.schedule import default_schedule, vector_lanes

pytestmark = [pytest.mark.tvm]
LANES = vector_lanes(tvm_build.host_target(1))  # 16 with AVX-512, 8 with AVX2


def _depthwise_module(channels, height, width, kernel, stride, *, dtype="float32", groups=None, seed=0):
    """A depthwise conv with a per-channel bias and h-swish after it (a MobileNetV3 block's middle), as a
    Relax module, with its weight and bias; ``dtype`` "int8": uint8 data, int8 weights, int32 sums."""
    from tvm import relax

    rng = np.random.default_rng(seed)
    groups = channels if groups is None else groups
    shape = (channels, channels // groups, kernel, kernel)
    if dtype == "int8":
        w = rng.integers(-128, 128, shape).astype(np.int8)
        bias = rng.integers(-1000, 1000, (1, channels, 1, 1)).astype(np.int32)
    else:
        w = rng.standard_normal(shape).astype(np.float32)
        bias = rng.standard_normal((1, channels, 1, 1)).astype(np.float32)
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, channels, height, width), "uint8" if dtype == "int8" else "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            acc = builder.emit(relax.op.nn.conv2d(x, relax.const(w), strides=[stride] * 2, padding=[kernel // 2] * 4,
                                                  groups=groups, out_dtype="int32" if dtype == "int8" else "float32"))
            y = builder.emit(relax.op.add(acc, relax.const(bias)))
            if dtype == "int8":
                out = builder.emit_output(relax.op.astype(y, "float32"))
            else:
                gate = relax.op.divide(relax.op.clip(relax.op.add(y, relax.const(3.0)), 0, 6), relax.const(6.0))
                out = builder.emit_output(relax.op.multiply(y, gate))
        builder.emit_func_output(out)
    return builder.get(), w, bias


def _run(mod, x, *, without=(), threads: int = 2):
    import tvm

    target = tvm_build.host_target(threads)
    scheduled = default_schedule(mod, target, without=without)
    uses = depthwise_functions(scheduled)
    model = tvm_build.TvmModel(tvm_build.build(scheduled, target), threads=threads)
    return model.invoke(tvm.runtime.tensor(x, model.device)).numpy(), uses


def _torch_reference(x, w, bias, stride):
    y = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias.reshape(-1)),
                                   stride=stride, padding=w.shape[-1] // 2, groups=w.shape[0])
    return torch.nn.functional.hardswish(y).numpy()


@pytest.mark.parametrize("channels,height,width,kernel,stride", [
    (32, 10, 10, 3, 1),   # 10-wide rows: 5-pixel tiles
    (48, 20, 20, 5, 2),   # stride 2: 10-wide output, 3 channel blocks
    (32, 5, 5, 7, 1),     # a 5x5 map under a 7x7 window: mostly padding
    (64, 16, 16, 5, 1),   # 16-wide rows: 4-pixel tiles
    (32, 7, 7, 3, 2),     # 4-wide output, odd input
    (32, 6, 14, 3, 1),    # 14-wide rows: 7-pixel tiles; height != width
    (96, 9, 9, 3, 1),     # 9-wide rows: 3-pixel tiles
    (32, 11, 11, 3, 1),   # 11-wide rows: 1-pixel tiles (no tile divides 11)
    (32, 12, 22, 3, 2),   # stride 2 to 11-wide rows
])
def test_float_depthwise_convs_in_channel_blocks_match(channels, height, width, kernel, stride):
    mod, w, bias = _depthwise_module(channels, height, width, kernel, stride)
    x = np.random.default_rng(1).standard_normal((1, channels, height, width)).astype(np.float32)
    got, uses = _run(mod, x)
    assert uses == 1
    np.testing.assert_allclose(got, _torch_reference(x, w, bias, stride), rtol=1e-4, atol=1e-4)
    plain, plain_uses = _run(mod, x, without=("depthwise",))
    assert plain_uses == 0
    np.testing.assert_array_equal(got, plain)  # the same sums in the same order


@pytest.mark.parametrize("channels,height,width,kernel,stride", [(32, 10, 10, 5, 1), (48, 12, 12, 3, 2),
                                                                 (96, 7, 7, 3, 1)])
def test_integer_depthwise_convs_in_channel_blocks_are_exact(channels, height, width, kernel, stride):
    mod, w, bias = _depthwise_module(channels, height, width, kernel, stride, dtype="int8")
    x = np.random.default_rng(2).integers(0, 256, (1, channels, height, width)).astype(np.uint8)
    pad = kernel // 2
    xp = np.pad(x[0].astype(np.int64), ((0, 0), (pad, pad), (pad, pad)))
    out_h, out_w = (height + 2 * pad - kernel) // stride + 1, (width + 2 * pad - kernel) // stride + 1
    expected = np.zeros((channels, out_h, out_w), np.int64)
    for ky in range(kernel):
        for kx in range(kernel):
            window = xp[:, ky:ky + stride * out_h:stride, kx:kx + stride * out_w:stride]
            expected += window * w[:, 0, ky, kx].astype(np.int64)[:, None, None]
    expected = (expected + bias[0].astype(np.int64)).astype(np.float32)[None]
    got, uses = _run(mod, x)
    assert uses == 1
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("channels,kernel,groups", [
    (16, 3, None),  # under 32 channels: the copies would cost as much as the sums
    (24, 3, None),  # under 32 channels
    (4 * LANES + LANES // 2, 3, None),  # not a multiple of the vector width
    (32, 3, 1),     # an ordinary 3x3 conv
    (32, 3, 16),    # grouped, two channels per group
    (32, 1, None),  # a 1x1 depthwise conv (a per-channel scale)
])
def test_other_convs_keep_the_simple_rules(channels, kernel, groups):
    mod, _, _ = _depthwise_module(channels, 10, 10, kernel, 1, groups=groups)
    x = np.random.default_rng(3).standard_normal((1, channels, 10, 10)).astype(np.float32)
    got, uses = _run(mod, x, threads=1)
    assert uses == 0
    np.testing.assert_array_equal(got, _run(mod, x, without=("depthwise",), threads=1)[0])


def test_a_rule_that_fails_half_way_leaves_the_simple_rules(monkeypatch):
    from kernels.tvm import depthwise

    def half_way(sch, block, **kwargs):
        sch.cache_read(block, 0, "global")  # a change to the trial schedule, then a refusal
        raise RuntimeError("refused")

    mod, _, _ = _depthwise_module(32, 10, 10, 3, 1)
    x = np.random.default_rng(4).standard_normal((1, 32, 10, 10)).astype(np.float32)
    expected, _ = _run(mod, x, without=("depthwise",))
    monkeypatch.setattr(depthwise, "schedule_depthwise", half_way)
    got, uses = _run(mod, x)
    assert uses == 0
    np.testing.assert_array_equal(got, expected)



def test_a_rule_whose_code_does_not_build_costs_speed_not_the_build(monkeypatch):
    """A build that fails with a special rule's code in it (as one did: an allocation inside a vectorised loop,
    "VectorizeLoop before LiftStorageAlloc", raised by TVM only when lowering) is built again with the simple
    rules alone, with a warning. The failure is simulated; the rebuild and the results are real."""
    import tvm

    from kernels.errors import KernelError
    from kernels.tvm.schedule import build_scheduled, legalize

    real_build = tvm_build.build

    def fails_on_the_rule(mod, target):
        if depthwise_functions(mod):
            raise KernelError("TVM build failed: InternalError: Check failed: VectorizeLoop before LiftStorageAlloc")
        return real_build(mod, target)

    mod, _, _ = _depthwise_module(32, 10, 10, 3, 1)
    x = np.random.default_rng(5).standard_normal((1, 32, 10, 10)).astype(np.float32)
    expected, _ = _run(mod, x, without=("depthwise",))
    monkeypatch.setattr(tvm_build, "build", fails_on_the_rule)
    target = tvm_build.host_target(2)
    with pytest.warns(RuntimeWarning, match="built with the simple rules alone: TVM build failed: InternalError"):
        executable, scheduled = build_scheduled(legalize(mod, target), target)
    assert depthwise_functions(scheduled) == 0
    model = tvm_build.TvmModel(executable, threads=2)
    np.testing.assert_array_equal(model.invoke(tvm.runtime.tensor(x, model.device)).numpy(), expected)

    def always_fails(mod, target):
        raise KernelError("TVM build failed: InternalError: LiftStorageAlloc")

    monkeypatch.setattr(tvm_build, "build", always_fails)
    with pytest.raises(KernelError, match="LiftStorageAlloc"):  # the simple rules alone: nothing left to drop
        build_scheduled(legalize(mod, target), target, vnni=False, without=("depthwise", "gemv"))

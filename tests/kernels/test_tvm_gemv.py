"""The matrix-vector rule (kernels.tvm.gemv): real TVM builds on this CPU, float results against numpy and the
simple rules, exact integer results, parallel only above the work threshold, and the blocks it leaves alone."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.tvm import build as tvm_build, gemv
from kernels.tvm.schedule import default_schedule

pytestmark = [pytest.mark.tvm]


def _se_module(channels, out_channels, *, dtype="float32", map_size=1, seed=0):
    """A pointwise conv on a ``map_size`` map with bias and h-sigmoid gating a feature map (squeeze-excite's
    second conv as fused in MobileNetV3), as a Relax module; "int8": uint8 data, int8 weights, int32 sums."""
    from tvm import relax

    rng = np.random.default_rng(seed)
    integer = dtype == "int8"
    shape = (out_channels, channels, 1, 1)
    w = rng.integers(-128, 128, shape).astype(np.int8) if integer else rng.standard_normal(shape).astype(np.float32)
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, channels, map_size, map_size), "uint8" if integer else "float32"))
    features = relax.Var("features", relax.TensorType((1, out_channels, 6, 6), "float32"))
    with builder.function("main", [x, features]):
        with builder.dataflow():
            acc = builder.emit(relax.op.nn.conv2d(x, relax.const(w), out_dtype="int32" if integer else "float32"))
            y = builder.emit(relax.op.astype(acc, "float32") if integer else acc)
            gate = relax.op.divide(relax.op.clip(relax.op.add(y, relax.const(3.0)), 0, 6), relax.const(6.0))
            gated = relax.op.multiply(features, gate) if map_size == 1 else relax.op.multiply(y, gate)
            out = builder.emit_output(gated)
        builder.emit_func_output(out)
    return builder.get(), w


def _dense_module(k, n, seed=0):
    from tvm import relax

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal((n,)).astype(np.float32)
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, k), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            out = builder.emit_output(relax.op.add(relax.op.matmul(x, relax.const(w)), relax.const(b)))
        builder.emit_func_output(out)
    return builder.get(), w, b


def _run(mod, inputs, *, without=(), threads=2):
    import tvm

    target = tvm_build.host_target(threads)
    scheduled = default_schedule(mod, target, without=without)
    text = "\n".join(f.script() for _, f in scheduled.functions_items() if isinstance(f, tvm.tirx.PrimFunc))
    model = tvm_build.TvmModel(tvm_build.build(scheduled, target), threads=threads)
    out = model.vm["main"](*[tvm.runtime.tensor(a, model.device) for a in inputs])
    return out.numpy(), text


def _hsigmoid(v):
    return np.clip(v + 3.0, 0, 6) / 6.0


@pytest.mark.parametrize("channels,out_channels", [(672, 168), (168, 672), (960, 1280), (64, 30)])
def test_squeeze_excite_convs_sum_input_channel_vectors(channels, out_channels):
    mod, w = _se_module(channels, out_channels)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, channels, 1, 1)).astype(np.float32)
    features = rng.standard_normal((1, out_channels, 6, 6)).astype(np.float32)
    got, text = _run(mod, [x, features])
    assert "_rf" in text and gemv.MARK in text  # the partial sums of the rfactor
    assert ("T.parallel" in text) == (channels * out_channels >= 1 << 18)
    y = (w[:, :, 0, 0].astype(np.float64) @ x[0, :, 0, 0].astype(np.float64))[None, :, None, None]
    np.testing.assert_allclose(got, features * _hsigmoid(y), rtol=1e-4, atol=1e-5)
    plain, plain_text = _run(mod, [x, features], without=("gemv",))
    assert "_rf" not in plain_text
    np.testing.assert_allclose(got, plain, rtol=1e-4, atol=1e-5)  # sums in another order


def test_integer_convs_on_a_1x1_map_are_exact():
    mod, w = _se_module(96, 40, dtype="int8")
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (1, 96, 1, 1)).astype(np.uint8)
    features = rng.standard_normal((1, 40, 6, 6)).astype(np.float32)
    got, text = _run(mod, [x, features])
    assert "_rf" in text
    y = (w[:, :, 0, 0].astype(np.int64) @ x[0, :, 0, 0].astype(np.int64)).astype(np.float32)[None, :, None, None]
    np.testing.assert_array_equal(got, features * _hsigmoid(y))


@pytest.mark.parametrize("k,n", [(1280, 1000), (256, 48), (96, 20)])
def test_dense_layers_in_wide_column_chunks(k, n):
    mod, w, b = _dense_module(k, n)
    x = np.random.default_rng(3).standard_normal((1, k)).astype(np.float32)
    got, text = _run(mod, [x])
    assert gemv.MARK in text
    np.testing.assert_allclose(got, (x.astype(np.float64) @ w + b)[:], rtol=1e-4, atol=1e-4)
    plain, plain_text = _run(mod, [x], without=("gemv",))
    assert gemv.MARK not in plain_text
    np.testing.assert_allclose(got, plain, rtol=1e-5, atol=1e-5)
    assert ("T.parallel" in text) == (k * n >= 1 << 18)


@pytest.mark.parametrize("channels,map_size", [(30, 1), (64, 3)])  # 30: no vector of 4, 8 or 16 divides it
def test_other_blocks_keep_the_simple_rules(channels, map_size):
    """Input channels that do not fill whole vectors, and a conv on a map larger than 1x1."""
    mod, _ = _se_module(channels, 32, map_size=map_size)
    rng = np.random.default_rng(4)
    inputs = [rng.standard_normal((1, channels, map_size, map_size)).astype(np.float32),
              rng.standard_normal((1, 32, 6, 6)).astype(np.float32)]
    got, text = _run(mod, inputs, threads=1)
    assert "_rf" not in text
    np.testing.assert_array_equal(got, _run(mod, inputs, without=("gemv",), threads=1)[0])


def test_unknown_rule_names_are_refused():
    mod, _ = _se_module(64, 32)
    with pytest.raises(ValueError, match="unknown schedule rule"):
        default_schedule(mod, tvm_build.host_target(1), without=("gemm",))
    with pytest.raises(ValueError, match="a list of rule names"):  # not split into letters
        default_schedule(mod, tvm_build.host_target(1), without="gemv")

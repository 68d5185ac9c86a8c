"""Integer compute for QDQ int8 models in TVM (kernels.tvm.int8): real onnxruntime quantization, real TVM
builds, parity against onnxruntime's own int8 run of the same file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernels.quantize import QuantRecipe, quantize_module
from kernels.runners import OrtFileRunner, make_runner
from kernels.tvm import build as tvm_build
from kernels.tvm.depthwise import depthwise_functions
from kernels.tvm.int8 import integer_compute
from kernels.tvm.pointwise import has_vnni, vnni_functions
from kernels.tvm.schedule import default_schedule
from nas.export._int8_tvm import relax_compute_ops
from search_spaces import LayerSpec
from supernets.layer_module import layer_input_shape, layer_module

pytestmark = [pytest.mark.tvm, pytest.mark.slow]

# the depthwise conv comes first: its padded input is the quantized network input, whose zero point is not 0;
# the second pads an h-swish output (zero point not 0: a pad op), the third a ReLU output (uint8: zero point 0,
# the conv pads; int8: -128, a pad op) and has two blocks of 16 channels (kernels.tvm.depthwise)
SPECS = [LayerSpec("dwconv", 8, 8, 3, 1, 8, (12, 12), "relu", bn=True),
         LayerSpec("pwconv", 8, 24, 1, 1, 1, (12, 12), "hswish", bn=True),
         LayerSpec("dwconv", 24, 24, 5, 2, 24, (12, 12), "relu", bn=True),
         LayerSpec("pwconv", 24, 32, 1, 1, 1, (6, 6), "relu", bn=True),
         LayerSpec("dwconv", 32, 32, 3, 1, 32, (6, 6), "hswish", bn=True)]


def _network():
    """The SPECS layers, then global pooling and a linear classifier (a Gemm in ONNX)."""
    return torch.nn.Sequential(*(layer_module(s) for s in SPECS), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(1),
                               torch.nn.Linear(SPECS[-1].out_channels, 10)).eval()


def _quantized(tmp_path, activation_type: str):
    torch.manual_seed(0)
    module = _network()
    shape = layer_input_shape(SPECS[0])
    calibration = np.random.default_rng(0).standard_normal((16, *shape[1:])).astype(np.float32) + 0.5
    return quantize_module(module, torch.zeros(shape), tmp_path / f"{activation_type}.onnx", calibration,
                           QuantRecipe(activation_type=activation_type), dynamic_batch=False)


HOST_VNNI = has_vnni(tvm_build.host_target(1))


@pytest.mark.parametrize("vnni", [pytest.param(True, marks=pytest.mark.skipif(not HOST_VNNI, reason="no AVX-512 VNNI")),
                                  False], ids=["vnni", "plain"])
@pytest.mark.parametrize("activation_type", ["uint8", "int8"])
def test_qdq_convolutions_compute_in_integers_and_match_onnxruntime(tmp_path, activation_type, vnni):
    q = _quantized(tmp_path, activation_type)
    mod, rewritten = integer_compute(tvm_build.import_onnx(q.path))
    assert rewritten == len(SPECS) + 1  # the convolutions and the classifier
    text = mod.script()
    assert text.count('out_dtype="int32"') == len(SPECS) + 1
    assert text.count("R.nn.pad(") == (2 if activation_type == "uint8" else 3)
    report = relax_compute_ops(tvm_build.relax_text(q.path, integer=True))
    assert report["computes_in"] == "int8" and report["integer_ops"] == len(SPECS) + 1
    assert relax_compute_ops(tvm_build.relax_text(q.path))["integer_ops"] == 0  # the import alone stays float

    scheduled = default_schedule(integer_compute(tvm_build.import_onnx(q.path))[0], tvm_build.host_target(1), vnni=vnni)
    assert vnni_functions(scheduled) == 2 * int(vnni and activation_type == "uint8")  # pointwise convs (vpdpbusd takes uint8 data)
    assert depthwise_functions(scheduled) == 1  # the 32-channel one, in channel blocks

    x = np.random.default_rng(1).standard_normal((6, *q.input_shape[1:])).astype(np.float32) + 0.5
    ort = OrtFileRunner(q.path, x[:1], threads=1, spin=False)
    if vnni == HOST_VNNI:
        tvm_int = make_runner("tvm", q, x[:1], threads=1)  # the runner of a QuantizedOnnx builds the integer path
    else:
        tvm_int = tvm_build.compile_onnx(q.path, threads=1, input_shape=q.input_shape, integer=True, vnni=vnni)
    step = q.output_step()
    for i in range(len(x)):
        expected, got = ort.run(x[i:i + 1]), tvm_int.run(x[i:i + 1])
        assert np.abs(expected).max() > 10 * step  # not a collapsed (all-zero) output
        assert np.abs(expected - got).max() <= step * 1.001  # at most one quantization step apart


def test_a_float_model_is_left_as_it_is(tmp_path):
    from kernels.onnx_export import export_onnx

    module = _network()
    path = export_onnx(module, torch.zeros(layer_input_shape(SPECS[0])), tmp_path / "f.onnx")
    mod, rewritten = integer_compute(tvm_build.import_onnx(path))
    assert rewritten == 0 and 'out_dtype="int32"' not in mod.script()


@pytest.mark.parametrize("axis,rewritten", [(0, 1), (-4, 1), (1, 0)])
def test_per_channel_weight_scales_must_run_along_output_channels(axis, rewritten):
    """A conv of dequantized operands whose weight scales run along another axis than the output channel
    (its sum cannot be scaled once per output) stays as imported."""
    from tvm import relax

    w = np.random.default_rng(0).integers(-127, 128, (4, 4, 1, 1)).astype(np.int8)
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "uint8"))
    with builder.function("main", [x]):
        with builder.dataflow():
            data = relax.op.dequantize(x, relax.const(np.float32(0.1)), relax.const(np.uint8(3)), axis=1)
            weight = relax.op.dequantize(relax.const(w), relax.const(np.full(4, 0.01, np.float32)),
                                         relax.const(np.zeros(4, np.int8)), axis=axis)
            out = builder.emit_output(builder.emit(relax.op.nn.conv2d(data, weight)))
        builder.emit_func_output(out)
    assert integer_compute(builder.get())[1] == rewritten

"""Post-training int8 quantization (kernels.quantize) with real onnxruntime, on a small CNN with signal."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from kernels import KernelError
from kernels.latency import time_module
from kernels.onnx_export import export_onnx
from kernels.quantize import (CALIBRATION_METHODS, QuantizedOnnx, QuantRecipe, cpu_isa, nodes_in_scopes,
                              quantize_module, quantize_onnx, run_batches)
from kernels.runners import make_runner

SHAPE = (1, 1, 28, 28)


def cbr(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class SmallCnn(nn.Module):
    """conv-bn-relu x4 in nested ``nn.Sequential``s, 2x2 average pool, Linear: ~190k weights (enough for
    the 4x size check). A global pool left the logits almost input-independent (int8 top-1 agreement
    then measures noise: 86%); a 7x7 map keeps the inputs' spatial patterns."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(cbr(1, 32), cbr(32, 64, 2), nn.Sequential(cbr(64, 64), cbr(64, 128)))
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Linear(128 * 7 * 7, 10)

    def forward(self, x):
        return self.classifier(self.pool(self.blocks(x)).flatten(1))


def images(n: int, seed: int) -> np.ndarray:
    """Per-sample coarse patterns (7x7 upsampled to 28x28) plus noise: global pooling keeps their signal."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((n, 1, 7, 7)).repeat(4, axis=2).repeat(4, axis=3)
    return (coarse + 0.3 * rng.standard_normal((n, *SHAPE[1:]))).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    """Kaiming init and randomised BN statistics (DESIGN: parity tests need real signal)."""
    gen = torch.Generator().manual_seed(0)
    net = SmallCnn()
    for mod in net.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(mod.weight, nonlinearity="relu", generator=gen)
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2, generator=gen)
            mod.running_var.uniform_(0.5, 2.0, generator=gen)
            mod.weight.data.uniform_(0.5, 1.5, generator=gen)
            mod.bias.data.uniform_(-0.2, 0.2, generator=gen)
    net.eval()
    with torch.no_grad():  # centre the pooled features, else one class wins every input (ReLU + pooling)
        features = net.pool(net.blocks(torch.from_numpy(images(256, seed=9)))).flatten(1)
        net.classifier.bias.copy_(-net.classifier.weight @ features.mean(0))
    return net


@pytest.fixture(scope="module")
def calibration():
    return images(128, seed=1)


@pytest.fixture(scope="module")
def test_images():
    return images(64, seed=2)


@pytest.fixture(scope="module")
def reference(model, test_images):
    with torch.no_grad():
        return model(torch.from_numpy(test_images)).numpy()


@pytest.fixture(scope="module")
def quantized(model, calibration, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "int8.onnx"
    return quantize_module(model, torch.zeros(SHAPE), out, calibration)


def initializers(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def weight_scales(path) -> dict[str, tuple]:
    """Scale shape of each DequantizeLinear of an int8 initializer (a weight), by the consumer node."""
    model = onnx.load(str(path))
    init = initializers(path)
    dq = {n.output[0]: init[n.input[1]].shape for n in model.graph.node
          if n.op_type == "DequantizeLinear" and init.get(n.input[0], np.zeros(0, np.float32)).dtype == np.int8}
    return {n.name: dq[n.input[1]] for n in model.graph.node if n.op_type in ("Conv", "Gemm") and n.input[1] in dq}


def one_line(err) -> bool:
    return "\n" not in str(err.value) and len(str(err.value)) < 400


def test_reference_has_signal(reference):
    assert np.abs(reference[0] - reference[1]).max() > 0.1 * np.abs(reference).max()
    assert len(set(reference.argmax(1))) >= 8  # every class but at most two wins some input


def test_qdq_file_and_record(quantized, calibration):
    q = quantized
    assert isinstance(q, QuantizedOnnx) and q.path.is_file()
    assert q.input_shape == SHAPE and q.calibration_samples == len(calibration)
    assert q.seconds > 0 and q.cpu_isa == cpu_isa()
    ops = [n.op_type for n in onnx.load(str(q.path)).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert len(q.quantized_nodes) == 5 and q.float_nodes == ()
    assert "/classifier/Gemm" in q.quantized_nodes
    assert [p.name for p in q.path.parent.iterdir()] == ["int8.onnx"]


def test_int8_logits_close_to_float(quantized, test_images, reference):
    out = run_batches(quantized.path, test_images)
    assert out.shape == reference.shape
    assert (out.argmax(1) == reference.argmax(1)).mean() >= 0.9
    assert np.abs(out - reference).max() < 0.1 * np.abs(reference).max()
    assert not np.allclose(out[0], out[1])


def test_excluded_scopes_stay_float(model, calibration, tmp_path):
    recipe = QuantRecipe(fp32_scopes=("blocks.2.0", "classifier"))
    q = quantize_module(model, torch.zeros(SHAPE), tmp_path / "mixed.onnx", calibration, recipe)
    excluded = {"/blocks/blocks.2/blocks.2.0/blocks.2.0.0/Conv", "/classifier/Gemm"}
    assert set(q.float_nodes) == excluded
    assert len(q.quantized_nodes) == 3 and not excluded & set(q.quantized_nodes)
    graph = onnx.load(str(q.path)).graph
    init = initializers(q.path)
    for node in graph.node:
        if node.name in excluded:
            assert init[node.input[1]].dtype == np.float32  # a float initializer, not a DQ output
    assert weight_scales(q.path).keys().isdisjoint(excluded)


def test_nodes_in_scopes_follows_torchscript_names(model, tmp_path):
    path = export_onnx(model, torch.zeros(SHAPE), tmp_path / "f.onnx")
    found = nodes_in_scopes(path, ("blocks.2", "blocks.2.1.0", "classifier"))
    assert found["blocks.2.1.0"] == ["/blocks/blocks.2/blocks.2.1/blocks.2.1.0/Conv"]
    assert found["classifier"] == ["/classifier/Gemm"]
    assert len(found["blocks.2"]) == 4  # two Conv + two Relu (BN folded)
    assert all(name.startswith("/blocks/blocks.2/") for name in found["blocks.2"])
    with pytest.raises(KernelError, match="'blocks.9' matches no node") as err:
        nodes_in_scopes(path, ("blocks.9",))
    assert one_line(err)


def test_nodes_in_scopes_attribute_children(tmp_path):
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.depthwise = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.ReLU())

        def forward(self, x):
            return x + self.depthwise(x)

    net = nn.Sequential(nn.Conv2d(1, 4, 1), nn.Sequential(Block(), Block()))
    path = export_onnx(net, torch.zeros(1, 1, 8, 8), tmp_path / "b.onnx")
    found = nodes_in_scopes(path, ("1.1.depthwise.0", "1.0"))
    assert found["1.1.depthwise.0"] == ["/1/1.1/depthwise/depthwise.0/Conv"]
    assert set(found["1.0"]) == {"/1/1.0/depthwise/depthwise.0/Conv", "/1/1.0/depthwise/depthwise.1/Relu",
                                 "/1/1.0/Add"}


def test_per_tensor_and_per_channel_scales(model, calibration, quantized, tmp_path):
    q = quantize_module(model, torch.zeros(SHAPE), tmp_path / "pt.onnx", calibration,
                        QuantRecipe(per_channel=False))
    per_tensor, per_channel = weight_scales(q.path), weight_scales(quantized.path)
    assert per_tensor.keys() == per_channel.keys() == set(quantized.quantized_nodes)
    assert all(shape == () for shape in per_tensor.values())
    assert per_channel["/blocks/blocks.2/blocks.2.1/blocks.2.1.0/Conv"] == (128,)
    assert per_channel["/classifier/Gemm"] == (10,)


def _activation_zero_point_types(path) -> set:
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    return {inits[n.input[2]].data_type for n in model.graph.node if n.op_type == "QuantizeLinear"}


def test_activations_are_unsigned_by_default_and_signed_on_request(model, calibration, quantized, tmp_path):
    signed = quantize_module(model, torch.zeros(SHAPE), tmp_path / "s8.onnx", calibration,
                             QuantRecipe(activation_type="int8"))
    assert _activation_zero_point_types(quantized.path) == {onnx.TensorProto.UINT8}
    assert _activation_zero_point_types(signed.path) == {onnx.TensorProto.INT8}
    with pytest.raises(ValueError, match="activation_type 'int4'"):
        QuantRecipe(activation_type="int4")


@pytest.mark.parametrize("method", [m for m in CALIBRATION_METHODS if m != "minmax"])
def test_other_calibration_methods(model, calibration, test_images, reference, tmp_path, method):
    q = quantize_module(model, torch.zeros(SHAPE), tmp_path / f"{method}.onnx", calibration,
                        QuantRecipe(method=method, activation_symmetric=True))
    assert len(q.quantized_nodes) == 5
    out = run_batches(q.path, test_images)
    assert (out.argmax(1) == reference.argmax(1)).mean() >= 0.9


def test_int8_file_is_about_4x_smaller(model, quantized, tmp_path):
    float_path = export_onnx(model, torch.zeros(SHAPE), tmp_path / "f.onnx")
    assert os.path.getsize(float_path) / os.path.getsize(quantized.path) > 3.3


def test_quantize_onnx_from_a_float_file(model, calibration, tmp_path):
    float_path = export_onnx(model, torch.zeros(SHAPE), tmp_path / "f.onnx", dynamic_batch=True)
    q = quantize_onnx(float_path, tmp_path / "q.onnx", calibration[:10])
    assert q.input_shape == SHAPE and q.calibration_samples == 10 and len(q.quantized_nodes) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.onnx", "q.onnx"]


@pytest.mark.parametrize("calib, match", [
    (np.zeros((0, 1, 28, 28), np.float32), "calibration set is empty: give at least one sample"),
    (np.full((4, 1, 28, 28), np.nan, np.float32), "non-finite"),
    (np.zeros((4, 3, 28, 28), np.float32), r"calibration shape \(4, 3, 28, 28\) does not fit"),
])
def test_bad_calibration_leaves_nothing(model, tmp_path, calib, match):
    with pytest.raises(KernelError, match=match) as err:
        quantize_module(model, torch.zeros(SHAPE), tmp_path / "q.onnx", calib)
    assert one_line(err) and list(tmp_path.iterdir()) == []


def test_unknown_scope_leaves_nothing(model, calibration, tmp_path):
    with pytest.raises(KernelError, match="'blocks.7' matches no node") as err:
        quantize_module(model, torch.zeros(SHAPE), tmp_path / "q.onnx", calibration[:4],
                        QuantRecipe(fp32_scopes=("blocks.7",)))
    assert one_line(err) and list(tmp_path.iterdir()) == []


def test_onnxruntime_failure_names_the_step(tmp_path):
    """An int64 model input: ORT's calibration run rejects the float samples."""
    net = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
    float_path = export_onnx(net, torch.zeros(1, 3, dtype=torch.long), tmp_path / "e.onnx", dynamic_batch=True)
    with pytest.raises(KernelError, match="failed at quantize_static.*minmax calibration.*data type") as err:
        quantize_onnx(float_path, tmp_path / "q.onnx", np.zeros((2, 3), np.float32))
    assert one_line(err) and [p.name for p in tmp_path.iterdir()] == ["e.onnx"]


def test_bad_recipes():
    with pytest.raises(ValueError, match="unknown calibration method 'kl'.*minmax.*entropy.*percentile") as err:
        QuantRecipe(method="kl")
    assert one_line(err)
    with pytest.raises(ValueError, match="tuple of module paths"):
        QuantRecipe(fp32_scopes="classifier")
    with pytest.raises(ValueError, match="dotted torch module path"):
        QuantRecipe(fp32_scopes=("blocks..1",))
    assert QuantRecipe(fp32_scopes=["a.b"]).fp32_scopes == ("a.b",)


def test_run_batches_matches_one_session_run(quantized, test_images):
    import onnxruntime as ort

    session = ort.InferenceSession(str(quantized.path), providers=["CPUExecutionProvider"])
    whole = session.run(None, {"input": test_images})[0]
    batched = run_batches(quantized.path, test_images, batch_size=7)
    np.testing.assert_allclose(batched, whole, rtol=0, atol=1e-5)
    with pytest.raises(KernelError, match="no images"):
        run_batches(quantized.path, test_images[:0])


def test_runners_take_a_quantized_model(quantized, test_images):
    x = torch.from_numpy(test_images[:1])
    runner = make_runner("onnxruntime", quantized, x, threads=1)
    np.testing.assert_allclose(runner.run(test_images[:1]), run_batches(quantized.path, test_images[:1]), atol=1e-6)
    timing = time_module(quantized, x, backend="onnxruntime", threads=1, warmup=1, repeats=3)
    assert timing.backend == "onnxruntime" and timing.median_s > 0
    for backend in ("torch", "torch-cuda"):
        with pytest.raises(KernelError, match="int8 ONNX model runs on onnxruntime or tvm, not torch"):
            make_runner(backend, quantized, x, threads=1)


def test_cpu_isa_is_a_name():
    assert cpu_isa() in ("avx512_vnni", "avx_vnni", "avx512", "avx2") or "." not in cpu_isa()


@pytest.mark.tvm
@pytest.mark.slow
def test_tvm_builds_the_qdq_model_with_parity(quantized, test_images, reference):
    """TVM imports Q/DQ and computes in float: within one output quantization step of onnxruntime int8."""
    pytest.importorskip("tvm")
    x = test_images[:8]
    runner = make_runner("tvm", quantized, torch.from_numpy(x[:1]), threads=2)
    out = np.concatenate([runner.run(x[i:i + 1]) for i in range(len(x))])
    ort_int8 = run_batches(quantized.path, x)
    graph = onnx.load(str(quantized.path)).graph
    last = next(n for n in graph.node if "logits" in n.output)
    assert last.op_type == "DequantizeLinear"
    step = float(initializers(quantized.path)[last.input[1]])
    assert np.abs(out - ort_int8).max() <= 2.01 * step
    assert np.abs(out - ort_int8).max() < 0.5 * np.abs(ort_int8 - reference[:8]).max()
    assert (out.argmax(1) == ort_int8.argmax(1)).all()

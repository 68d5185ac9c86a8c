"""layer_module(spec) for transformer rows: the ops of the row, with the analytic MACs and params, and
an ONNX export that runs (kernel-level latency tables time these modules through ONNX)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hw_profiles.analytic import layer_macs, layer_params
from search_spaces import LayerSpec, get_space
from search_spaces.layers import TRANSFORMER_OPS
from supernets.layer_module import layer_input_shape, layer_module


def _workloads(space_name: str, n: int) -> list[LayerSpec]:
    space, rng = get_space(space_name), np.random.default_rng(0)
    seen: dict = {}
    for arch in [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(n))]:
        for row in space.layers(arch):
            seen.setdefault(row.workload)
    return list(seen)


def _macs(module, shape) -> int:
    """MACs of one forward pass as PyTorch's flop counter sees them (convs, linears, matmuls: 2 FLOPs each)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.randn(shape))
    return counter.get_total_flops() // 2


def test_macs_params_and_shapes_match_the_layer_table():
    workloads = _workloads("tiny_vit", 4)
    assert set(TRANSFORMER_OPS) <= {w.op for w in workloads}
    assert any(w.act == "gelu" for w in workloads) and any(w.residual and w.op == "linear" for w in workloads)
    for spec in workloads:
        module, shape = layer_module(spec), layer_input_shape(spec)
        assert _macs(module, shape) == layer_macs(spec), spec
        assert sum(p.numel() for p in module.parameters()) == layer_params(spec), spec
        with torch.no_grad():
            out = module(torch.randn(shape))
        assert out.numel() == spec.out_elements, spec


def test_input_shapes_per_op():
    tokens, heads, d = 17, 2, 8
    qk = LayerSpec("matmul", heads * d, heads * tokens, 1, 1, heads, (tokens, 1))
    av = LayerSpec("matmul", heads * tokens, heads * d, 1, 1, heads, (tokens, 1))
    soft = LayerSpec("softmax", heads * tokens, heads * tokens, 1, 1, 1, (tokens, 1))
    assert layer_input_shape(qk) == (1, heads, tokens, d)
    assert layer_input_shape(av) == layer_input_shape(soft) == (1, heads, tokens, tokens)
    assert layer_input_shape(LayerSpec("tokens", 32, 32, 1, 1, 1, (16, 1))) == (1, 16, 32)
    assert layer_input_shape(LayerSpec("layernorm", 32, 32, 1, 1, 1, (17, 1))) == (1, 17, 32)
    assert layer_input_shape(LayerSpec("linear", 32, 96, 1, 1, 1, (17, 1))) == (1, 17, 32)
    assert layer_input_shape(LayerSpec("linear", 32, 10, 1, 1, 1, (1, 1))) == (1, 32)
    assert layer_input_shape(LayerSpec("patch_embed", 3, 32, 4, 4, 1, (28, 28), bias=True)) == (1, 3, 28, 28)


def test_the_ops_compute_what_the_rows_say():
    torch.manual_seed(1)
    qk = layer_module(LayerSpec("matmul", 16, 34, 1, 1, 2, (17, 1)))
    q = torch.randn(1, 2, 17, 8)
    expected = q @ qk.operand.transpose(-2, -1) / 8 ** 0.5
    assert torch.allclose(qk(q), expected, atol=1e-6)
    av = layer_module(LayerSpec("matmul", 34, 16, 1, 1, 2, (17, 1)))
    scores = torch.softmax(torch.randn(1, 2, 17, 17), -1)
    assert torch.allclose(av(scores), scores @ av.operand)
    soft = layer_module(LayerSpec("softmax", 34, 34, 1, 1, 1, (17, 1)))
    assert torch.allclose(soft(torch.randn(1, 2, 17, 17)).sum(-1), torch.ones(1, 2, 17))
    tokens = layer_module(LayerSpec("tokens", 8, 8, 1, 1, 1, (4, 1)))
    x = torch.randn(1, 4, 8)
    out = tokens(x)
    assert torch.allclose(out[:, 1:] - tokens.pos[:, 1:], x)
    assert torch.allclose(out[:, :1], tokens.cls + tokens.pos[:, :1])
    fc2 = LayerSpec("linear", 16, 8, 1, 1, 1, (5, 1), bias=True, residual=True)
    module = layer_module(fc2)
    x = torch.randn(1, 5, 16)
    assert torch.allclose(module(x) - module.skip, module.body(x))
    assert not torch.allclose(module(torch.randn_like(x)), module(x))  # the output depends on the input
    fc1 = layer_module(LayerSpec("linear", 8, 16, 1, 1, 1, (5, 1), "gelu", bias=True))
    assert isinstance(fc1[1], torch.nn.GELU)


def test_onnx_export_runs_with_parity(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from kernels.onnx_export import INPUT_NAME, export_onnx

    space = get_space("tiny_vit")
    rows = space.layers(space.smallest())
    one_per_kind = {(r.op, r.act, r.residual, r.in_hw == (1, 1)): r.workload for r in rows}
    for i, spec in enumerate(one_per_kind.values()):
        module = layer_module(spec)
        x = torch.randn(layer_input_shape(spec))
        path = export_onnx(module, x, tmp_path / f"row{i}.onnx")
        (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(got, module(x).numpy(), rtol=1e-4, atol=1e-5, err_msg=str(spec))

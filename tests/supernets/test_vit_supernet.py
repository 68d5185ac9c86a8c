"""ElasticViTSupernet: q/k/v slicing, extract parity against an independent reference, MACs/params
against the layer table, block scopes, init, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hw_profiles import macs, params
from supernets import ElasticViTSupernet, count_macs_params, create_supernet
from supernets.testing import enliven
from supernets.vit_static import LAYER_NORM_EPS


def _arch(space, **settings):
    return space.parse({**space.largest().to_dict(), **settings})


def _archs(space, n, seed):
    rng = np.random.default_rng(seed)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


def reference_forward(supernet: ElasticViTSupernet, arch, x: torch.Tensor) -> torch.Tensor:
    """The subnet written from the space's description alone, reading the supernet's parameters with
    its own slicing rule (q, k and v each take their first ``heads * head_dim`` rows) and
    ``F.scaled_dot_product_attention``: shares no code with the supernet or the static modules."""
    space, sd = supernet.space, supernet.state_dict()
    p, e = space.patch(arch), arch["embed"]
    tokens = F.conv2d(x, sd[f"embed.proj.patch{p}.weight"][:e], sd[f"embed.proj.patch{p}.bias"][:e], stride=p)
    tokens = tokens.flatten(2).transpose(1, 2)
    cls = sd["embed.cls_token"][:, :, :e].expand(x.shape[0], 1, e)
    h = torch.cat([cls, tokens], 1) + sd[f"embed.pos_embed.patch{p}"][:, :, :e]
    b, n, _ = h.shape

    def norm(t, key):
        return F.layer_norm(t, (e,), sd[key + ".weight"][:e], sd[key + ".bias"][:e], LAYER_NORM_EPS)

    for i in range(arch["depth"]):
        pre = f"layers.{i}."
        heads, w, hidden = arch[f"heads_{i}"], space.attention_width(arch, i), space.mlp_hidden(arch, i)
        wq, bq = sd[pre + "qkv.weight"], sd[pre + "qkv.bias"]
        big = wq.shape[0] // 3
        q, k, v = (F.linear(norm(h, pre + "norm1"), wq[j * big:j * big + w, :e], bq[j * big:j * big + w])
                   .reshape(b, n, heads, w // heads).transpose(1, 2) for j in range(3))
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w)
        h = h + F.linear(att, sd[pre + "proj.weight"][:e, :w], sd[pre + "proj.bias"][:e])
        fc1 = sd[pre + "fc1.weight"][:hidden, :e], sd[pre + "fc1.bias"][:hidden]
        mid = F.gelu(F.linear(norm(h, pre + "norm2"), *fc1))
        h = h + F.linear(mid, sd[pre + "fc2.weight"][:e, :hidden], sd[pre + "fc2.bias"][:e])
    h = norm(h, "norm")[:, 0]
    return F.linear(h, sd["classifier.weight"][:, :e], sd["classifier.bias"])


@pytest.fixture(scope="module")
def tiny():
    return create_supernet("tiny_vit", seed=0)


def test_qkv_takes_the_first_rows_of_q_of_k_and_of_v(tiny):
    space = tiny.space
    arch = _arch(space, heads_0=1, embed=32)  # width 16 of 64: q, k, v rows [0,16), [64,80), [128,144)
    enliven(tiny, arch, seed=0)
    static = tiny.extract(arch).layers[0].attn.attn.qkv
    stored, bias = tiny.layers[0].qkv.weight.detach(), tiny.layers[0].qkv.bias.detach()
    big, w = stored.shape[0] // 3, 16
    assert static.weight.shape == (3 * w, 32)
    for j in range(3):
        torch.testing.assert_close(static.weight[j * w:(j + 1) * w], stored[j * big:j * big + w, :32])
        torch.testing.assert_close(static.bias[j * w:(j + 1) * w], bias[j * big:j * big + w])
    # the naive slice (first 3w rows) is a different tensor: k and v would be q's later heads
    assert not torch.equal(static.weight, stored[:3 * w, :32])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_extract_and_supernet_equal_an_independent_reference(tiny, seed):
    space = tiny.space
    archs = _archs(space, 3, seed) + [_arch(space, patch=7, heads_1=2, mlp_2=1, depth=3)]
    worst = 0.0
    for i, arch in enumerate(archs):
        enliven(tiny, arch, seed=10 * seed + i)
        x = torch.randn(tiny.input_shape(arch, batch=3), generator=torch.Generator().manual_seed(i))
        with torch.no_grad(), tiny.active(arch):
            got = tiny(x)
            want = reference_forward(tiny, arch, x)
            static = tiny.extract(arch)(x)
        worst = max(worst, (got - want).abs().max().item(), (static - want).abs().max().item())
        assert (want[0] - want[1]).abs().max() > 1e-2 * want.abs().max()  # the input matters
    assert worst < 1e-5, worst


@pytest.mark.parametrize("name,n", [("tiny_vit", 6), ("autoformer_t", 1)])
def test_extracted_macs_and_params_equal_the_layer_table(name, n, supernet_cache):
    supernet = supernet_cache(name)
    archs = _archs(supernet.space, n, seed=5)
    for arch in archs[2:] if name == "autoformer_t" else archs:  # (the contract suite has autoformer_t's extremes)
        rows = supernet.space.layers(arch)
        counted = count_macs_params(supernet.extract(arch), supernet.input_shape(arch))
        assert counted == (macs(rows), params(rows)), arch.to_json()
        assert counted[0] > sum(r.op_macs for r in rows if r.op != "matmul")  # the attention matmuls counted


def test_block_scopes_put_cls_token_and_position_embedding_under_embed(tiny):
    arch = _arch(tiny.space, depth=2)
    scopes = tiny.block_scopes(arch)
    assert scopes["embed"] == ("embed",) and scopes["layer1.mlp"] == ("layers.1.mlp",)
    assert "layer2.attn" not in scopes
    names = dict(tiny.extract(arch).named_parameters())
    assert {"embed.cls_token", "embed.pos_embed", "embed.proj.weight"} <= set(names)


def test_one_patch_conv_and_position_table_per_patch_size_and_a_shared_cls_token(tiny):
    space = tiny.space
    sd = tiny.state_dict()
    assert sd["embed.pos_embed.patch4"].shape == (1, 50, 64) and sd["embed.pos_embed.patch7"].shape == (1, 17, 64)
    assert sd["embed.proj.patch7.weight"].shape == (64, 1, 7, 7)
    small = tiny.extract(_arch(space, patch=7, embed=16))
    assert small.embed.pos_embed.shape == (1, 17, 16)
    torch.testing.assert_close(small.embed.cls_token, tiny.embed.cls_token[:, :, :16])


def test_init_depends_on_the_seed_only():
    a, b, c = (create_supernet("tiny_vit", seed=s).state_dict() for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.qkv.weight"], c["layers.0.qkv.weight"])
    w = a["layers.0.fc1.weight"]  # Xavier uniform over the full (256, 64) weight
    bound = (6 / (256 + 64)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound and abs(w.std() - bound / 3 ** 0.5) < 0.01
    cls = a["embed.cls_token"]
    assert 0.01 < cls.std() < 0.03 and cls.abs().max() <= 0.04 + 1e-6  # truncated normal, std 0.02, cut at 2 std
    assert torch.equal(a["layers.0.norm1.weight"], torch.ones(64)) and not a["layers.0.fc1.bias"].any()


def test_no_weight_decay_names_cls_token_and_position_embeddings(tiny):
    assert tiny.no_weight_decay() == {"embed.cls_token", "embed.pos_embed.patch4", "embed.pos_embed.patch7"}


def test_constructor_refuses_a_foreign_space_and_a_bad_dropout():
    from search_spaces import tiny_mbv3, tiny_vit

    with pytest.raises(ValueError, match="ViTSpace"):
        ElasticViTSupernet(space=tiny_mbv3())
    with pytest.raises(ValueError, match="dropout_rate"):
        ElasticViTSupernet(space=tiny_vit(), dropout_rate=1.0)


def test_extracted_vit_exports_to_onnx_with_parity(tmp_path, tiny):
    pytest.importorskip("onnxruntime")
    from kernels.onnx_export import export_onnx
    from kernels.runners import ort_session

    arch = _arch(tiny.space, heads_0=2, mlp_1=2, depth=2)
    enliven(tiny, arch, seed=3)
    net = tiny.extract(arch)
    path = export_onnx(net, torch.zeros(1, 1, 28, 28), tmp_path / "vit.onnx", dynamic_batch=True)
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    session = ort_session(path, threads=1)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), atol=1e-4, rtol=1e-4)


def test_a_vit_has_no_batchnorm_so_evaluation_recalibrates_nothing(tiny):
    from supernets.bn import has_batchnorm, recalibrate_bn
    from supernets.evaluate import evaluate

    arch = tiny.space.smallest()
    calls = []

    def batches():
        while True:
            calls.append(1)
            yield torch.randn(tiny.input_shape(arch, 2))

    assert not has_batchnorm(tiny) and has_batchnorm(create_supernet("tiny_mbv3"))
    assert recalibrate_bn(tiny, arch, batches(), 5) == 0 and not calls  # not one wasted forward pass
    x, y = torch.randn(tiny.input_shape(arch, 4)), torch.tensor([0, 1, 2, 3])
    result = evaluate(tiny, arch, [(x, y)], calib_batches=batches(), n_calib_batches=3)
    assert result.bn_recalibrated is False and result.n == 4 and not calls

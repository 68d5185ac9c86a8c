"""The ViT spaces: settings, canonical form, the layer table's MACs/params by hand, bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hw_profiles import analytic
from search_spaces import InvalidArchError, LayerSpec, ViTSpace, get_space


def _layer_params(embed: int, width: int, hidden: int) -> int:
    """One pre-norm layer by hand: two norms, qkv (bias), proj, fc1, fc2 (biases)."""
    return 2 * 2 * embed + (embed * 3 * width + 3 * width) + (width * embed + embed) \
        + (embed * hidden + hidden) + (hidden * embed + embed)


def _layer_macs(embed: int, width: int, hidden: int, heads: int, tokens: int) -> int:
    head_dim = width // heads
    linears = tokens * (embed * 3 * width + width * embed + embed * hidden + hidden * embed)
    return linears + 2 * heads * tokens * tokens * head_dim  # QK^T and AV


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_autoformer_t_params_and_macs_match_a_count_by_hand(which):
    space = get_space("autoformer_t")
    arch = getattr(space, which)()
    embed, depth, heads, mlp = (240, 14, 4, 4.0) if which == "largest" else (192, 12, 3, 3.5)
    width, hidden, tokens = heads * 64, int(embed * mlp), 14 * 14 + 1
    params = depth * _layer_params(embed, width, hidden)
    params += 3 * 16 * 16 * embed + embed  # patch embedding (bias)
    params += tokens * embed + embed  # position embedding + cls token
    params += 2 * embed + embed * 1000 + 1000  # final norm + classifier
    macs = depth * _layer_macs(embed, width, hidden, heads, tokens) + 3 * 16 * 16 * embed * 196 + embed * 1000
    rows = space.layers(arch)
    assert analytic.params(rows) == params
    assert analytic.macs(rows) == macs


def test_autoformer_t_range_brackets_the_papers_searched_tiny_model():
    """AutoFormer-T (the searched subnet) has 5.7M params and 1.3G MACs: inside the space's range."""
    space = get_space("autoformer_t")
    small, large = (space.layers(a) for a in (space.smallest(), space.largest()))
    assert analytic.params(small) < 5.7e6 < analytic.params(large)
    assert analytic.macs(small) < 1.3e9 < analytic.macs(large)


def test_tiny_vit_settings_and_canonical_form():
    space = get_space("tiny_vit")
    assert space.names[:3] == ("patch", "embed", "depth")
    assert space.largest()["patch"] == 4 and space.smallest()["patch"] == 7  # more tokens: larger network
    arch = space.parse({**space.largest().to_dict(), "depth": 2, "heads_3": 1, "mlp_3": 1})
    same = space.parse({**space.largest().to_dict(), "depth": 2})
    assert arch.arch_id == same.arch_id  # slots past the depth are ignored
    assert space.canonicalize(arch)["heads_3"] == space.params[space.names.index("heads_3")].default
    assert len(space.layers(arch)) == 2 + 2 * 9 + 2


def test_tiny_vit_rows_and_tokens():
    space = get_space("tiny_vit")
    arch = space.parse({**space.largest().to_dict(), "patch": 7, "embed": 32, "depth": 1, "heads_0": 2, "mlp_0": 2})
    rows = space.layers(arch)
    assert space.tokens(arch) == 17
    patch, tokens, norm, qkv, qk, soft, av, proj = rows[:8]
    assert (patch.op, patch.out_hw, patch.out_channels) == ("patch_embed", (4, 4), 32)
    assert (tokens.op, tokens.in_hw, tokens.out_hw) == ("tokens", (16, 1), (17, 1))
    assert qkv.out_channels == 3 * 2 * 16 and qkv.out_hw == (17, 1)
    assert qk.out_elements == 2 * 17 * 17  # the score buffer: tokens² per head
    assert qk.op_macs == av.op_macs == 2 * 17 * 17 * 16
    assert soft.op_macs == 0 and analytic.layer_params(soft) == 0 and analytic.layer_params(qk) == 0
    assert proj.residual and rows[-1].op == "linear" and rows[-1].in_hw == (1, 1)
    assert {r.block for r in rows} == space.active_block_labels(arch) <= set(space.block_labels())


def test_attention_keeps_k_and_v_live():
    space = get_space("tiny_vit")
    rows = space.layers(space.largest())
    held = analytic.attention_held_elements(rows)
    qk = next(i for i, r in enumerate(rows) if r.op == "matmul")
    v = rows[qk + 2].out_elements
    assert held[qk:qk + 3] == [2 * v, v, v] and held[qk - 1] == 0 and held[qk + 3] == 0


def test_bad_input_names_the_valid_values():
    space = get_space("tiny_vit")
    with pytest.raises(InvalidArchError, match=r"depth=5 is not one of \[1, 2, 3, 4\]"):
        space.parse({**space.largest().to_dict(), "depth": 5})
    with pytest.raises(InvalidArchError, match=r"patch=5 is not one of \[7, 4\]"):
        space.parse({**space.largest().to_dict(), "patch": 5})
    base = dict(name="v", resolution=28, patch_sizes=(4,), embed_dims=(16,), depths=(1,), heads=(1,),
                mlp_ratios=(1,), head_dim=16, num_classes=10, in_channels=1)
    with pytest.raises(ValueError, match=r"patch size\(s\) \[5\] do not divide the resolution 28; "
                                         r"valid patch sizes: \[1, 2, 4, 7, 14, 28\]"):
        ViTSpace(**{**base, "patch_sizes": (4, 5)})
    with pytest.raises(ValueError, match=r"heads must divide the embedding .* \[\(16, 3\)\]"):
        ViTSpace(**{**base, "head_dim": None, "heads": (1, 3)})
    with pytest.raises(ValueError, match="head_dim must be a positive int or None"):
        ViTSpace(**{**base, "head_dim": 0})
    with pytest.raises(InvalidArchError, match="resolution 28 only"):
        space.with_resolution(space.largest(), 32)


def test_patch_embed_rows_refuse_a_patch_that_does_not_tile_the_image():
    with pytest.raises(ValueError, match="patch_embed needs kernel == stride"):
        LayerSpec("patch_embed", 1, 16, 5, 5, 1, (28, 28))


def test_sampling_is_canonical_and_seeded():
    space = get_space("tiny_vit")
    a = [space.sample(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1] and space.canonicalize(a[0]) == a[0]
    codes = space.encode(a[0])
    assert space.decode(codes) == a[0]


@pytest.mark.parametrize("ratios, detail", [
    ((True,), r"got \(True,\)"),
    (("x",), r"got \('x',\)"),
    ((0.01,), r"got \[0\.01\], whose smallest 0\.01 gives embedding 16 an MLP of 0 units"),
    ((1.0, float("inf")), r"got \(1\.0, inf\)"),
    ((), r"got \(\)"),
    (2.0, "got 2.0"),
])
def test_bad_mlp_ratios_are_refused_in_one_line_naming_what_is_valid(ratios, detail):
    base = dict(name="v", resolution=28, patch_sizes=(4,), embed_dims=(16, 32), depths=(1,), heads=(1,),
                mlp_ratios=(1,), head_dim=16, num_classes=10, in_channels=1)
    with pytest.raises(ValueError) as err:
        ViTSpace(**{**base, "mlp_ratios": ratios})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("mlp_ratios must be a non-empty list of distinct finite numbers (not bools) whose "
                              "smallest times the smallest embedding 16 rounds to >= 1 (ratios > 0.03125)")
    assert re.search(detail, message)
    # the smallest ratio that gives the smallest embedding one MLP unit builds its layers
    space = ViTSpace(**{**base, "mlp_ratios": (0.04,)})
    assert space.mlp_hidden(space.smallest(), 0) == 1 and space.layers(space.smallest())


@pytest.mark.parametrize("dims", [("mlp",), ("mlp", "heads"), ("mlp", "heads", "depth", "embed", "patch")])
def test_sample_elastic_draws_every_open_slot_uniformly(dims):
    space = get_space("tiny_vit")
    rng = np.random.default_rng(0)
    draws = [space.sample_elastic(rng, dims) for _ in range(4000)]
    assert all(space.canonicalize(a) == a for a in draws)
    for i in range(space.max_depth):
        active = [a for a in draws if i < a["depth"]]  # a switched-off slot holds the canonical default
        for kind, options in (("mlp", (1, 2, 4)), ("heads", (1, 2, 4))):
            share = np.mean([a[f"{kind}_{i}"] == options[0] for a in active])
            if kind in dims:
                assert abs(share - 1 / 3) < 0.035, (kind, i, share)  # was 33/50/67/82% for i = 0..3
            else:
                assert share == 0.0  # closed: the largest option
    depth = np.bincount([a["depth"] for a in draws], minlength=5)[1:] / len(draws)
    assert np.allclose(depth, 0.25, atol=0.035) if "depth" in dims else depth[-1] == 1.0
    with pytest.raises(ValueError, match=r"unknown elastic dims \['width'\]; valid: \['patch', 'embed', 'heads', "
                                         r"'mlp', 'depth'\]"):
        space.sample_elastic(rng, ("mlp", "width"))
    first = [space.sample_elastic(np.random.default_rng(5), dims) for _ in range(2)]
    assert first[0] == first[1]


def test_settings_of_slots_past_the_depth_may_be_left_out():
    space = get_space("tiny_vit")
    short = space.parse({"patch": 4, "embed": 48, "depth": 2, "heads_0": 2, "heads_1": 4, "mlp_0": 2, "mlp_1": 4})
    full = space.parse({**short.to_dict(), "heads_3": 4, "mlp_2": 4})
    assert short.arch_id == full.arch_id
    with pytest.raises(InvalidArchError, match=r"missing setting\(s\) \['mlp_1'\]"):
        space.parse({"patch": 4, "embed": 48, "depth": 2, "heads_0": 2, "heads_1": 4, "mlp_0": 2})
    with pytest.raises(InvalidArchError, match=r"depth=9 is not one of"):
        space.parse({**short.to_dict(), "depth": 9})


def test_covering_archs_refuse_another_resolution():
    with pytest.raises(InvalidArchError, match="resolution 28 only"):
        get_space("tiny_vit").covering_archs([32])

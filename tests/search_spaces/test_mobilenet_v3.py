"""The elastic MobileNetV3 spaces ``ofa_mbv3`` and ``tiny_mbv3``: OFA layout, canonical form, layer table."""

import re
from collections import defaultdict

import numpy as np
import pytest

from hw_profiles import analytic
from search_spaces import InvalidArchError, MobileNetV3Space, StageSpec, get_space, make_divisible

# name -> (block slots, stages, depth choices, resolutions)
EXPECTED = {
    "ofa_mbv3": (20, 5, [2, 3, 4], [128, 160, 192, 224]),
    "tiny_mbv3": (15, 5, [1, 2, 3], [24, 28, 32]),
}
KERNELS, EXPANDS = [3, 5, 7], [3, 4, 6]
SE_STAGES = {2, 4, 5}  # 1-based, as in OFA's se_stages


@pytest.fixture(params=sorted(EXPECTED))
def space(request) -> MobileNetV3Space:
    return get_space(request.param)


@pytest.fixture
def ofa() -> MobileNetV3Space:
    return get_space("ofa_mbv3")


def ofa_dict(space, *, ks=None, e=None, d=None, r=None, **extra):
    """OFA's subnet layout, every setting at its maximum unless given."""
    n_slots, n_stages, depths, resolutions = EXPECTED[space.name]
    return {
        "ks": [KERNELS[-1]] * n_slots if ks is None else ks,
        "e": [EXPANDS[-1]] * n_slots if e is None else e,
        "d": [depths[-1]] * n_stages if d is None else d,
        "r": resolutions[-1] if r is None else r,
        **extra,
    }


def with_item(values, index, value):
    values = list(values)
    values[index] = value
    return values


def samples(space, n=40, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def summary(layer):
    """The fields of a LayerSpec that define the network (block labels left out)."""
    return (layer.op, layer.in_channels, layer.out_channels, layer.kernel, layer.stride, layer.groups,
            layer.in_hw, layer.act, layer.se_channels, layer.residual, layer.bias, layer.bn)


def blocks_of(rows):
    """Rows grouped by elastic block label, e.g. ``{"stage2.block0": [expand, depthwise, project]}``."""
    groups = defaultdict(list)
    for row in rows:
        if row.block.startswith("stage"):
            groups[row.block].append(row)
    return groups


# ----------------------------------------------------------------- settings
def test_settings_are_per_slot_kernel_and_expand_per_stage_depth_and_resolution(space):
    n_slots, n_stages, depths, resolutions = EXPECTED[space.name]
    assert space.names == tuple([f"ks_{i}" for i in range(n_slots)] + [f"e_{i}" for i in range(n_slots)]
                                + [f"d_{s}" for s in range(n_stages)] + ["r"])
    params = {p.name: list(p.options) for p in space.params}
    assert params["ks_0"] == KERNELS and params["e_0"] == EXPANDS
    assert params["d_0"] == depths and params["r"] == resolutions


# --------------------------------------------------------------- OFA layout
def test_parses_the_ofa_dict(space):
    arch = space.parse(ofa_dict(space))
    assert arch == space.largest()


def test_ofa_dict_with_listed_resolution_and_null_width_is_accepted(space):
    resolution = EXPECTED[space.name][3][0]
    plain = space.parse(ofa_dict(space, r=resolution))
    assert plain["r"] == resolution
    assert space.parse(ofa_dict(space, r=[resolution])) == plain
    assert space.parse(ofa_dict(space, r=resolution, wid=None)) == plain


def test_ofa_ks_list_maps_to_the_slot_settings(ofa):
    ks = [KERNELS[i % 3] for i in range(20)]
    e = [EXPANDS[(i + 1) % 3] for i in range(20)]
    arch = ofa.parse(ofa_dict(ofa, ks=ks, e=e, d=[4, 4, 4, 4, 4], r=160))
    assert [arch[f"ks_{i}"] for i in range(20)] == ks
    assert [arch[f"e_{i}"] for i in range(20)] == e
    assert arch["r"] == 160


def test_to_ofa_dict_round_trips(space):
    n_slots, n_stages, _, _ = EXPECTED[space.name]
    for arch in samples(space):
        layout = space.to_ofa_dict(arch)
        assert sorted(layout) == ["d", "e", "ks", "r"]
        assert (len(layout["ks"]), len(layout["e"]), len(layout["d"])) == (n_slots, n_slots, n_stages)
        back = space.parse(layout)
        assert back == arch and back.arch_id == arch.arch_id


@pytest.mark.parametrize("key", ["ks", "e", "d"])
def test_ofa_list_of_wrong_length_names_the_expected_length(space, key):
    layout = ofa_dict(space)
    expected = len(layout[key])
    layout[key] = layout[key][:-1]
    with pytest.raises(InvalidArchError, match=re.escape(f"'{key}' must be a list of {expected} numbers, "
                                                         f"got a list of {expected - 1}")):
        space.parse(layout)


@pytest.mark.parametrize(
    ("key", "bad", "fragment"),
    [
        ("ks", 4, "ks_2=4 is not one of [3, 5, 7]"),
        ("e", 5, "e_2=5 is not one of [3, 4, 6]"),
        ("e", "6", "e_2='6' is not one of [3, 4, 6]"),
    ],
)
def test_ofa_value_not_in_choices_lists_the_choices(space, key, bad, fragment):
    layout = ofa_dict(space)
    layout[key] = with_item(layout[key], 2, bad)
    with pytest.raises(InvalidArchError, match=re.escape(fragment)):
        space.parse(layout)


def test_ofa_depth_and_resolution_outside_choices_list_the_choices(ofa):
    with pytest.raises(InvalidArchError, match=re.escape("d_1=1 is not one of [2, 3, 4]")):
        ofa.parse(ofa_dict(ofa, d=[4, 1, 4, 4, 4]))
    with pytest.raises(InvalidArchError, match=re.escape("r=256 is not one of [128, 160, 192, 224]")):
        ofa.parse(ofa_dict(ofa, r=256))


@pytest.mark.parametrize(
    ("layout_extra", "fragment"),
    [
        ({"width": 1.0}, "unknown key(s) ['width']"),
        ({"wid": [1.0] * 20}, "'wid' must be null"),
    ],
)
def test_ofa_dict_with_unknown_or_unsupported_key_is_rejected(space, layout_extra, fragment):
    with pytest.raises(InvalidArchError, match=re.escape(fragment)):
        space.parse(ofa_dict(space, **layout_extra))


def test_ofa_dict_without_resolution_is_rejected(ofa):
    layout = ofa_dict(ofa)
    del layout["r"]
    with pytest.raises(InvalidArchError, match=re.escape("missing 'r'")):
        ofa.parse(layout)


# ------------------------------------------------------------ canonical form
def test_settings_of_switched_off_blocks_do_not_change_arch_id(ofa):
    # Stage 1 (slots 0-3) at depth 2: slots 2 and 3 do not run.
    base = ofa.parse(ofa_dict(ofa, d=[2, 4, 4, 4, 4]))
    for slot in (2, 3):
        for key in ("ks", "e"):
            changed = ofa.parse(ofa_dict(ofa, d=[2, 4, 4, 4, 4], **{key: with_item(ofa_dict(ofa)[key], slot, 3)}))
            assert changed != base  # different settings ...
            assert changed.arch_id == base.arch_id  # ... same network
            assert ofa.canonicalize(changed) == ofa.canonicalize(base)
    assert ofa.inactive(base) == {"ks_2", "ks_3", "e_2", "e_3"}


@pytest.mark.parametrize(("key", "slot"), [("ks", 0), ("ks", 1), ("e", 1), ("ks", 19)])
def test_settings_of_running_blocks_change_arch_id(ofa, key, slot):
    base = ofa.parse(ofa_dict(ofa, d=[2, 4, 4, 4, 4]))
    changed = ofa.parse(ofa_dict(ofa, d=[2, 4, 4, 4, 4], **{key: with_item(ofa_dict(ofa)[key], slot, 3)}))
    assert changed.arch_id != base.arch_id


def test_depth_changes_arch_id(ofa):
    assert ofa.parse(ofa_dict(ofa, d=[3, 4, 4, 4, 4])).arch_id != ofa.largest().arch_id


def test_canonicalize_resets_switched_off_settings_to_defaults_and_is_idempotent(space):
    rng = np.random.default_rng(5)
    for _ in range(30):
        raw = space.decode(rng.integers(0, space.cardinalities))
        canonical = space.canonicalize(raw)
        assert space.canonicalize(canonical) == canonical
        assert canonical.arch_id == raw.arch_id
        for name in space.inactive(raw):
            assert canonical[name] == space.params[space.names.index(name)].default


def test_sample_returns_canonical_archs(space):
    for arch in samples(space):
        assert space.canonicalize(arch) == arch


def test_largest_and_smallest(space):
    _, _, depths, resolutions = EXPECTED[space.name]
    largest, smallest = space.largest(), space.smallest()
    assert space.encode(largest).tolist() == (space.cardinalities - 1).tolist()
    assert space.encode(smallest).tolist() == [0] * len(space.params)
    assert largest["r"] == resolutions[-1] and largest["d_0"] == depths[-1] and largest["ks_0"] == 7
    assert smallest["r"] == resolutions[0] and smallest["d_4"] == depths[0] and smallest["e_3"] == 3
    assert space.canonicalize(smallest) == smallest


def test_input_shape(space):
    channels = {"ofa_mbv3": 3, "tiny_mbv3": 1}[space.name]
    r = EXPECTED[space.name][3][-1]
    assert space.input_shape(space.largest()) == (channels, r, r)


# --------------------------------------------------------------- layer table
def test_largest_ofa_layer_table_head_and_tail(ofa):
    rows = ofa.layers(ofa.largest())
    first = [
        # op, in, out, k, s, groups, in_hw, act, se, residual, bias, bn
        ("conv", 3, 16, 3, 2, 1, (224, 224), "hswish", 0, False, False, True),  # stem
        ("dwconv", 16, 16, 3, 1, 16, (112, 112), "relu", 0, False, False, True),  # block0
        ("pwconv", 16, 16, 1, 1, 1, (112, 112), "none", 0, True, False, True),
        ("pwconv", 16, 96, 1, 1, 1, (112, 112), "relu", 0, False, False, True),  # stage1.block0, e=6
        ("dwconv", 96, 96, 7, 2, 96, (112, 112), "relu", 0, False, False, True),
        ("pwconv", 96, 24, 1, 1, 1, (56, 56), "none", 0, False, False, True),
    ]
    last = [
        ("pwconv", 160, 960, 1, 1, 1, (7, 7), "hswish", 0, False, False, True),  # final expand
        ("gap", 960, 960, 1, 1, 960, (7, 7), "none", 0, False, False, False),
        ("pwconv", 960, 1280, 1, 1, 1, (1, 1), "hswish", 0, False, False, False),  # feature mix: no bn/bias
        ("linear", 1280, 1000, 1, 1, 1, (1, 1), "none", 0, False, True, False),  # classifier
    ]
    assert [summary(row) for row in rows[:6]] == first
    assert [summary(row) for row in rows[-4:]] == last
    assert len(rows) == 3 + 3 * 20 + 4
    assert rows[-1].out_hw == (1, 1)


# Computed once with hw_profiles.analytic on this layer table and hard-coded here. They are
# cross-checked against OFA's own reference counter elsewhere (test_ofa_reference_counts.py and its
# data/ofa_reference_counts.jsonl: OFA's float32 sum gives 566_170_688 for the largest).
@pytest.mark.parametrize(
    ("which", "expected_macs", "expected_params"),
    [("largest", 566_170_656, 7_664_760), ("smallest", 41_476_224, 3_410_792)],
)
def test_ofa_total_macs_and_params(ofa, which, expected_macs, expected_params):
    rows = ofa.layers(getattr(ofa, which)())
    assert analytic.macs(rows) == expected_macs
    assert analytic.params(rows) == expected_params


def test_se_only_in_stages_2_4_5_with_make_divisible_width(space):
    for arch in [space.largest(), space.smallest(), *samples(space, n=10)]:
        for b in space.active_blocks(arch):
            expected = make_divisible(b.mid_channels // 4, 8) if b.stage + 1 in SE_STAGES else 0
            assert b.se_channels == expected
        for label, (expand, depthwise, project) in blocks_of(space.layers(arch)).items():
            stage = int(label[len("stage"):].split(".")[0])
            assert (depthwise.se_channels > 0) == (stage in SE_STAGES), label
            assert depthwise.se_channels in (0, make_divisible(depthwise.out_channels // 4, 8))
            assert expand.se_channels == project.se_channels == 0


def test_se_width_of_a_72_channel_block_is_24(ofa):
    # Slot 4 is stage 2's first block: 24 input channels x e=3 -> 72 expanded, SE hidden 24.
    arch = ofa.parse(ofa_dict(ofa, e=with_item(ofa_dict(ofa)["e"], 4, 3)))
    depthwise = blocks_of(ofa.layers(arch))["stage2.block0"][1]
    assert (depthwise.op, depthwise.out_channels, depthwise.se_channels) == ("dwconv", 72, 24)


def test_residual_only_where_stride_1_and_widths_match(space):
    for arch in [space.largest(), space.smallest(), *samples(space, n=10)]:
        n_residual = 0
        for label, (expand, depthwise, project) in blocks_of(space.layers(arch)).items():
            expected = depthwise.stride == 1 and expand.in_channels == project.out_channels
            assert project.residual == expected, label
            assert not expand.residual and not depthwise.residual
            n_residual += expected
        # Each stage's first block changes width (or stride), every later block is residual.
        assert n_residual == sum(arch[f"d_{s}"] - 1 for s in range(5))


def test_strided_block_that_keeps_its_width_is_not_residual():
    # Neither built-in space has one (their strided stages all widen), so build a space that does.
    space = MobileNetV3Space(
        name="flat", stages=[StageSpec(16, 2, 2, "relu", False), StageSpec(16, 2, 1, "relu", False)],
        kernel_sizes=[3], expand_ratios=[3], depths=[2], resolutions=[32], stem_width=16,
        first_block_width=16, final_expand_width=32, last_channel=64, num_classes=10, in_channels=3,
    )
    projects = [rows[2] for rows in blocks_of(space.layers(space.largest())).values()]
    assert [p.residual for p in projects] == [False, True, True, True]


@pytest.mark.parametrize("r", EXPECTED["ofa_mbv3"][3])
def test_spatial_sizes_halve_to_r_over_32_before_the_head(ofa, r):
    arch = ofa.parse(ofa_dict(ofa, r=r, d=[2, 3, 4, 2, 3]))
    rows = ofa.layers(arch)
    assert rows[0].in_hw == (r, r) and rows[0].out_hw == (r // 2, r // 2)
    for prev, row in zip(rows, rows[1:]):  # each row reads what the previous one wrote
        assert row.in_hw == prev.out_hw and row.in_channels == prev.out_channels
    head = next(row for row in rows if row.block == "head")
    assert head.in_hw == (r // 32, r // 32)
    strided = [row for row in rows if row.stride == 2]
    assert [row.in_hw[0] for row in strided] == [r, r // 2, r // 4, r // 8, r // 16]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (18, 24),  # rounds to 16, but 16 < 0.9 * 18, so one divisor up
        (72, 72),
        (4, 8),  # never below the divisor
        (20, 24),  # half-way rounds up
        (27, 32),  # rounds to 24 < 24.3
        (100, 104),  # 12.5 divisors round up to 13
        (240, 240),
    ],
)
def test_make_divisible(value, expected):
    assert make_divisible(value, 8) == expected
    assert make_divisible(value, 8) % 8 == 0
    assert make_divisible(value, 8) >= 0.9 * value

"""QuantizedSpace: the policy is part of the arch, canonical form, names, layer rows, bad input."""

import numpy as np
import pytest

from search_spaces import InvalidArchError, QuantPolicy, QuantizedSpace, UnknownSpaceError, get_space, quantized


@pytest.fixture(scope="module")
def spaces():
    return get_space("tiny_mbv3"), get_space("tiny_mbv3+q")


def test_plain_space_keeps_its_arch_ids(spaces):
    base, space = spaces
    arch = base.sample(np.random.default_rng(0))
    assert arch.arch_id == get_space("tiny_mbv3").parse(arch.to_dict()).arch_id
    q = space.combine(arch, QuantPolicy.uniform(space.labels, "int8"))
    assert space.network(q).arch_id == arch.arch_id
    assert q.arch_id != arch.arch_id


def test_policy_settings_are_choices_after_the_network(spaces):
    base, space = spaces
    assert space.names[: len(base.names)] == base.names
    assert space.names[len(base.names):] == ("q_all", *(f"q_{label}" for label in base.block_labels()),
                                             "q_weights", "q_activations")
    assert space.params[len(base.names)].options == ("int8", "fp32", "per_block")
    assert space.name == "tiny_mbv3+q"
    codes = space.encode(space.sample(np.random.default_rng(1)))
    assert len(codes) == len(space.params)


def test_canonical_form_drops_precision_of_blocks_depth_switched_off(spaces):
    _, space = spaces
    arch = space.parse({**space.sample(np.random.default_rng(2)).to_dict(), "d_0": 1, "q_all": "per_block"})
    other = space.parse({**arch.to_dict(), "q_stage1.block2": "fp32" if arch["q_stage1.block2"] == "int8" else "int8"})
    assert arch.arch_id == other.arch_id
    live = space.parse({**arch.to_dict(), "q_stage1.block0": "fp32" if arch["q_stage1.block0"] == "int8" else "int8"})
    assert live.arch_id != arch.arch_id
    assert "stage1.block2" not in space.policy(arch).precisions


def test_a_uniform_policy_ignores_the_per_block_settings(spaces):
    base, space = spaces
    arch = space.parse({**space.sample(np.random.default_rng(5)).to_dict(), "q_all": "int8"})
    flipped = space.parse({**arch.to_dict(), **{f"q_{label}": "fp32" for label in space.labels}})
    assert arch.arch_id == flipped.arch_id and space.policy(flipped).label == "int8"
    assert {r.precision for r in space.layers(flipped)} == {"int8"}
    mixed = space.parse({**flipped.to_dict(), "q_all": "per_block"})
    assert space.policy(mixed).label == "fp32" and mixed.arch_id != arch.arch_id
    # combine picks the uniform level whenever the policy is uniform over the blocks that run
    assert space.combine(base.largest(), QuantPolicy.uniform(space.labels, "int8"))["q_all"] == "int8"
    assert space.combine(base.largest(), QuantPolicy({"stem": "fp32"}))["q_all"] == "per_block"
    draws = [space.sample(np.random.default_rng(i))["q_all"] for i in range(300)]
    assert 0.2 < draws.count("per_block") / 300 < 0.5  # a uniform draw picks a uniform policy 2 times in 3


def test_all_float_policy_ignores_the_quantization_scheme(spaces):
    base, space = spaces
    net = base.largest()
    a = space.combine(net, QuantPolicy.uniform(space.labels, "fp32"))
    b = space.combine(net, QuantPolicy.uniform(space.labels, "fp32", weight_granularity="per_tensor",
                                               activation_scheme="symmetric"))
    assert a.arch_id == b.arch_id
    c = space.combine(net, QuantPolicy.uniform(space.labels, "int8"))
    d = space.combine(net, QuantPolicy.uniform(space.labels, "int8", weight_granularity="per_tensor"))
    assert c.arch_id != d.arch_id
    assert space.policy(c).label == "int8" and space.policy(a).label == "fp32"


def test_layers_carry_each_blocks_precision(spaces):
    base, space = spaces
    net = base.largest()
    policy = QuantPolicy({**{label: "int8" for label in space.labels}, "stage2.block1": "fp32"})
    rows = space.layers(space.combine(net, policy))
    plain = base.layers(net)
    assert [r.workload.__class__ for r in rows] == [r.__class__ for r in plain]
    assert [(r.block, r.precision) for r in rows if r.precision == "fp32"] == [("stage2.block1", "fp32")] * 3
    assert all(r.precision is None for r in plain)
    assert space.policy(space.combine(net, policy)).label == "mixed"


def test_parse_round_trips_and_accepts_the_nested_layout(spaces):
    _, space = spaces
    arch = space.sample(np.random.default_rng(3))
    assert space.parse(arch.to_dict()) == arch
    values = arch.to_dict()
    nested = {"network": {k: v for k, v in values.items() if not k.startswith("q_")},
              "quantization": {k: v for k, v in values.items() if k.startswith("q_")}}
    assert space.parse(nested) == arch


def test_custom_precision_choices_are_part_of_the_name():
    space = get_space("tiny_mbv3+q(int8)")
    assert space.name == "tiny_mbv3+q(int8)"
    assert all(space.policy(space.sample(np.random.default_rng(i))).label == "int8" for i in range(5))
    assert quantized(get_space("tiny_mbv3"), precisions=("int8", "fp32")).name == "tiny_mbv3+q"


@pytest.mark.parametrize("bad, match", [
    ("tiny_mbv3+q(int3)", "int3"),
    ("nope+q", "unknown space 'nope'"),
])
def test_bad_space_names_are_one_line_errors(bad, match):
    with pytest.raises(UnknownSpaceError, match=match):
        get_space(bad)


def test_unknown_precision_and_unknown_block_are_clear_errors(spaces):
    base, space = spaces
    arch = space.sample(np.random.default_rng(4))
    with pytest.raises(InvalidArchError, match="q_stem='int4' is not one of"):
        space.parse({**arch.to_dict(), "q_stem": "int4"})
    with pytest.raises(InvalidArchError, match="no block"):
        space.combine(base.largest(), QuantPolicy({"stage9.block0": "int8"}))
    with pytest.raises(InvalidArchError, match="unknown precision"):
        QuantPolicy.uniform(space.labels, "int4")
    with pytest.raises(ValueError, match="already has a quantization policy"):
        QuantizedSpace(space)


def test_a_per_block_policy_with_one_precision_is_the_uniform_one(spaces):
    base, space = spaces
    for precision in ("int8", "fp32"):
        uniform = space.combine(base.largest(), QuantPolicy.uniform(space.labels, precision))
        spelled = space.parse({**uniform.to_dict(), "q_all": "per_block",
                               **{f"q_{label}": precision for label in space.labels}})
        assert spelled.arch_id == uniform.arch_id
        assert space.canonicalize(spelled) == space.canonicalize(uniform)
        assert space.canonicalize(spelled)["q_all"] == precision


def test_a_malformed_nested_arch_is_a_clear_error(spaces):
    _, space = spaces
    with pytest.raises(InvalidArchError, match="nested quantized arch"):
        space.parse({"network": 5, "quantization": {}})

"""``SearchSpace`` built from bare ``Choice``s, ``ArchConfig`` as a value, and the space registry."""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import search_spaces
from search_spaces import (
    ArchConfig,
    Choice,
    DuplicateNameError,
    InvalidArchError,
    NASError,
    NoLayerIRError,
    SearchSpace,
    UnknownSpaceError,
    get_space,
    list_spaces,
    register_space,
)
from search_spaces import registry

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_space(name="mine"):
    return SearchSpace(name, [
        Choice("op0", ["conv3x3", "skip", "none"]),
        Choice("w", [8, 16, 32]),
        Choice("ratio", [0.25, 0.5]),
        Choice("bn", [True, False]),
    ])


@pytest.fixture
def space():
    return make_space()


def valid(**overrides):
    return {"op0": "skip", "w": 16, "ratio": 0.5, "bn": False, **overrides}


def samples(space, n_seeds=25, per_seed=4):
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        for _ in range(per_seed):
            yield space.sample(rng)


# ------------------------------------------------------------------ numpy only
def test_importing_search_spaces_does_not_import_torch():
    code = "import search_spaces, sys; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------ space validation
@pytest.mark.parametrize(
    ("name", "params", "shown"),
    [
        ("", [Choice("a", [1])], "''"),
        ("s", [], "none"),
        ("s", [("a", [1, 2])], "('a', [1, 2])"),
        ("s", [Choice("a", [1]), Choice("a", [2])], "['a']"),
    ],
)
def test_invalid_space_definition_raises_value_error(name, params, shown):
    with pytest.raises(ValueError, match=re.escape(shown)):
        SearchSpace(name, params)


def test_structure_properties(space):
    assert space.names == ("op0", "w", "ratio", "bn")
    assert space.cardinalities.tolist() == [3, 3, 2, 2]
    assert space.cardinalities.dtype == np.int64
    assert space.size == 36


# ---------------------------------------------------------------------- parse
def test_parse_accepts_a_flat_dict_and_keeps_parameter_order(space):
    arch = space.parse({"bn": False, "ratio": 0.5, "w": 16, "op0": "skip"})
    assert arch.items == (("op0", "skip"), ("w", 16), ("ratio", 0.5), ("bn", False))
    assert arch["w"] == 16 and list(arch) == list(space.names)


def test_parse_stores_the_option_not_the_json_number(space):
    arch = space.parse(valid(w=16.0))
    assert type(arch["w"]) is int
    assert arch == space.parse(valid()) and arch.to_json() == space.parse(valid()).to_json()


@pytest.mark.parametrize(
    ("obj", "fragments"),
    [
        (valid(depth=3), ["'depth'", "valid: op0, w, ratio, bn"]),  # unknown key lists valid names
        ({"op0": "skip", "w": 16, "ratio": 0.5}, ["missing", "'bn'"]),
        (valid(w=12), ["w=12", "[8, 16, 32]"]),  # bad value names the valid options
        (valid(op0="conv5x5"), ["op0='conv5x5'", "['conv3x3', 'skip', 'none']"]),
        (valid(bn=1), ["bn=1", "[True, False]"]),  # 1 is not True
        (valid(w=True), ["w=True"]),  # True is not an int option
        ([["op0", "skip"]], ["JSON object", "list"]),  # non-dict inputs
        ("op0=skip", ["JSON object", "str"]),
        (None, ["JSON object", "NoneType"]),
    ],
)
def test_parse_errors_are_invalid_arch_errors_that_say_what_to_fix(space, obj, fragments):
    with pytest.raises(InvalidArchError) as info:
        space.parse(obj)
    assert isinstance(info.value, ValueError) and isinstance(info.value, NASError)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_validate_rejects_an_arch_of_another_space(space):
    other = make_space("other").parse(valid())
    with pytest.raises(InvalidArchError, match="'other'"):
        space.validate(other)


def test_validate_rejects_a_hand_built_arch_with_a_bad_value(space):
    forged = dataclasses.replace(space.parse(valid()), items=(("op0", "skip"), ("w", 12), ("ratio", 0.5),
                                                              ("bn", False)))
    with pytest.raises(InvalidArchError, match=re.escape("w=12 is not one of [8, 16, 32]")):
        space.validate(forged)


# ------------------------------------------------------------ encode / decode
def test_encode_gives_option_indices(space):
    codes = space.encode(space.parse({"op0": "none", "w": 8, "ratio": 0.5, "bn": True}))
    assert codes.dtype == np.int64
    assert codes.tolist() == [2, 0, 1, 0]


def test_encode_decode_round_trip_on_many_samples(space):
    for arch in samples(space):
        codes = space.encode(arch)
        assert ((0 <= codes) & (codes < space.cardinalities)).all()
        back = space.decode(codes)
        assert back == arch and back.arch_id == arch.arch_id


def test_every_code_vector_decodes_and_re_encodes(space):
    rng = np.random.default_rng(123)
    for _ in range(100):
        codes = rng.integers(0, space.cardinalities)
        assert space.encode(space.decode(codes)).tolist() == codes.tolist()


@pytest.mark.parametrize(
    ("codes", "fragment"),
    [
        ([0, 0, 0], "expected 4 integer codes"),
        ([0, 0, 0, 0, 0], "expected 4 integer codes"),
        ([[0, 0, 0, 0]], "expected 4 integer codes"),
        ([0, 3, 0, 0], "code 3 for w must be an integer in 0..2"),
        ([0, 0, -1, 0], "code -1 for ratio must be an integer in 0..1"),
        ([0, 0, 0, 0.5], "code 0.5 for bn"),
    ],
)
def test_decode_rejects_wrong_length_and_out_of_range_codes(space, codes, fragment):
    with pytest.raises(InvalidArchError, match=re.escape(fragment)):
        space.decode(codes)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_decode_rejects_non_finite_codes_with_invalid_arch_error(space, bad):
    with pytest.raises(InvalidArchError):
        space.decode([0, bad, 0, 0])


# --------------------------------------------------------------------- sample
@pytest.mark.parametrize("rng", [None, 0, np.random.RandomState(0)])
def test_sample_requires_a_numpy_generator(space, rng):
    with pytest.raises(ValueError, match="numpy.random.Generator"):
        space.sample(rng)


def test_sample_is_reproducible_for_a_seed_and_varies_across_seeds(space):
    def draw(seed):
        rng = np.random.default_rng(seed)
        return [space.sample(rng) for _ in range(10)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_samples_cover_every_option(space):
    seen = {name: {arch[name] for arch in samples(space)} for name in space.names}
    assert seen == {p.name: set(p.options) for p in space.params}


# ------------------------------------------------------------------ ArchConfig
def test_arch_config_is_hashable_and_equal_by_value(space):
    a, b = space.parse(valid()), space.parse(valid())
    assert a == b and hash(a) == hash(b)
    assert len({a, b, space.parse(valid(w=32))}) == 2


@pytest.mark.parametrize(("attribute", "value"), [("items", ()), ("space", "x"), ("arch_id", "0" * 16)])
def test_arch_config_is_immutable(space, attribute, value):
    arch = space.parse(valid())
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(arch, attribute, value)


def test_arch_config_getitem_unknown_setting_raises_key_error(space):
    with pytest.raises(KeyError, match="'depth'"):
        space.parse(valid())["depth"]


def test_to_dict_and_to_json_round_trip_through_parse(space):
    for arch in samples(space, n_seeds=10):
        assert space.parse(arch.to_dict()) == arch
        back = space.parse(json.loads(arch.to_json()))
        assert back == arch and back.arch_id == arch.arch_id
        assert list(json.loads(arch.to_json())) == list(space.names)


def test_arch_id_is_a_stable_hash():
    # Hard-coded on purpose: this guards against accidental changes to the hash (field order,
    # JSON separators, digest length). arch_ids are stored in job databases; a change here breaks them.
    space = SearchSpace("mine", [Choice("op0", ["conv3x3", "skip", "none"]), Choice("w", [8, 16, 32])])
    assert space.parse({"op0": "conv3x3", "w": 8}).arch_id == "9d5dae2a1010290f"
    assert space.parse({"w": 16, "op0": "skip"}).arch_id == "6a25b6765e1298df"


def test_arch_id_depends_on_values_and_space_name(space):
    ids = {arch.to_json(): arch.arch_id for arch in samples(space)}
    assert len(set(ids.values())) == len(ids)  # distinct configs, distinct ids (bare space: all active)
    assert make_space("other").parse(valid()).arch_id != space.parse(valid()).arch_id
    assert space.arch_id(valid()) == space.parse(valid()).arch_id


def test_bare_space_has_nothing_inactive(space):
    arch = space.parse(valid())
    assert space.inactive(arch) == frozenset()
    assert space.canonicalize(arch) is arch


@pytest.mark.parametrize("method", ["layers", "input_shape"])
def test_bare_space_has_no_layer_table(space, method):
    with pytest.raises(NoLayerIRError, match="'mine'") as info:
        getattr(space, method)(space.parse(valid()))
    assert isinstance(info.value, NotImplementedError)


# -------------------------------------------------------------------- registry
@pytest.fixture
def isolated_registry(monkeypatch):
    """A copy of the registry, so registering in a test leaves the real one untouched."""
    monkeypatch.setattr(registry.SPACES, "_factories", dict(registry.SPACES._factories))


def test_get_space_unknown_name_lists_the_registered_spaces():
    with pytest.raises(UnknownSpaceError) as info:
        get_space("mobilenet_v9")
    assert isinstance(info.value, KeyError) and isinstance(info.value, NASError)
    message = str(info.value)  # plain text, not KeyError's quoted repr
    assert message.startswith("unknown space 'mobilenet_v9'")
    assert "ofa_mbv3" in message and "tiny_mbv3" in message


def test_get_space_returns_a_fresh_instance_of_the_named_space():
    a, b = get_space("tiny_mbv3"), get_space("tiny_mbv3")
    assert a is not b and a.name == "tiny_mbv3"


def test_get_space_passes_keyword_options_to_the_factory():
    assert get_space("tiny_mbv3", num_classes=7).num_classes == 7


@pytest.mark.usefixtures("isolated_registry")
def test_register_space_with_a_taken_name_raises():
    with pytest.raises(DuplicateNameError, match="'ofa_mbv3'") as info:
        register_space("ofa_mbv3", make_space)
    assert isinstance(info.value, ValueError)


@pytest.mark.usefixtures("isolated_registry")
def test_registered_user_space_is_listed_sorted_and_retrievable():
    register_space("zz_user", make_space)
    register_space("aa_user", make_space)
    names = list_spaces()
    assert names == sorted(names)
    assert {"aa_user", "ofa_mbv3", "tiny_mbv3", "zz_user"} <= set(names)
    assert get_space("aa_user").names == ("op0", "w", "ratio", "bn")


def test_built_in_spaces_are_registered():
    assert {"ofa_mbv3", "tiny_mbv3"} <= set(search_spaces.list_spaces())

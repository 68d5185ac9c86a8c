"""AcceleratorSpace (``<base>+hw(<device>)``): the joint genome of a network and an accelerator template."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import hw_profiles  # noqa: F401  registers the template source get_space needs for "+hw(...)"
from search_spaces import (
    AcceleratorSpace,
    InvalidArchError,
    NASError,
    UnknownSpaceError,
    get_space,
    tiny_mbv3,
    with_accelerator,
)
from search_spaces.accelerator import PREFIX, split_accelerator_name

NAME = "tiny_mbv3+hw(zcu104)"
QNAME = "tiny_mbv3+q+hw(zcu104)"
# zcu104.toml [fpga] and [fpga.search], written out here so that the test does not read them through the code
ZCU104_KNOBS = {
    "dataflow": ("weight_stationary", "output_stationary"),
    "pe_rows": (8, 16, 32, 64),
    "pe_cols": (8, 16, 32, 64),
    "input_buffer_bytes": (65536, 131072, 262144, 524288),
    "weight_buffer_bytes": (32768, 65536, 131072, 262144),
    "output_buffer_bytes": (65536, 131072, 262144, 524288),
}
ZCU104_DEFAULT = {"dataflow": "weight_stationary", "pe_rows": 32, "pe_cols": 32, "input_buffer_bytes": 262144,
                  "weight_buffer_bytes": 131072, "output_buffer_bytes": 262144}


@pytest.fixture(scope="module")
def space() -> AcceleratorSpace:
    return get_space(NAME)


@pytest.fixture(scope="module")
def qspace() -> AcceleratorSpace:
    return get_space(QNAME)


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


def _archs(space, n, seed):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def _base_part(space, arch) -> dict:
    """The base settings of a joint arch, read from its dict without the space's help."""
    return {k: v for k, v in arch.to_dict().items() if not k.startswith(PREFIX)}


# ------------------------------------------------------------------ name, structure
def test_name_knobs_default_and_round_trip_through_get_space(space):
    assert isinstance(space, AcceleratorSpace)
    assert space.name == NAME and space.device == "zcu104"
    assert split_accelerator_name(NAME) == ("tiny_mbv3", "zcu104")
    assert split_accelerator_name("tiny_mbv3") is None
    assert {k: tuple(v) for k, v in space.knobs.items()} == ZCU104_KNOBS
    assert list(space.knobs) == list(ZCU104_KNOBS)  # SEARCHABLE order
    assert space.default_template == ZCU104_DEFAULT
    base = tiny_mbv3()
    assert space.names == (*base.names, *(PREFIX + k for k in ZCU104_KNOBS))
    again = get_space(space.name)
    assert again.name == space.name and again.version == space.version and again.names == space.names
    assert space.version.startswith(base.version + "+hw")
    # the knob ranges are part of the version: another range, another version
    other = AcceleratorSpace(base, device="zcu104", knobs={**ZCU104_KNOBS, "pe_rows": (16, 32)},
                             default=ZCU104_DEFAULT)
    assert other.name == space.name and other.version != space.version
    assert space.num_classes == base.num_classes and space.in_channels == base.in_channels


def test_quantized_base_composes(qspace):
    assert qspace.name == QNAME and qspace.base.name == "tiny_mbv3+q"
    assert qspace.names[: len(qspace.base.names)] == qspace.base.names
    assert get_space(QNAME).version == qspace.version


def test_templates_are_the_mixed_radix_grid_last_knob_fastest(space):
    templates = space.templates()
    expected = [dict(zip(ZCU104_KNOBS, values)) for values in itertools.product(*ZCU104_KNOBS.values())]
    assert len(templates) == int(np.prod([len(v) for v in ZCU104_KNOBS.values()])) == 2 * 4 ** 5
    assert templates == expected
    assert templates[1]["output_buffer_bytes"] == 131072 and templates[1]["dataflow"] == "weight_stationary"
    assert templates[len(templates) // 2]["dataflow"] == "output_stationary"
    # index = mixed-radix number of the hw codes
    n = len(space.base.params)
    radix = [len(v) for v in ZCU104_KNOBS.values()]
    for i in (0, 1, 7, 100, 1234, len(templates) - 1):
        arch = space.combine(space.base.largest(), templates[i])
        digits = space.encode(arch)[n:]
        index = 0
        for d, r in zip(digits, radix):
            index = index * r + int(d)
        assert index == i


# ------------------------------------------------------------------ the two halves
def test_network_is_the_canonical_base_arch(space):
    base = space.base
    for arch in _archs(space, 25, seed=1):
        expected = base.canonicalize(base.parse(_base_part(space, arch)))
        net = space.network(arch)
        assert net.space == base.name
        assert net.arch_id == expected.arch_id and net.items == expected.items


def test_template_keys_are_the_knobs_with_the_arch_values(space):
    for arch in _archs(space, 10, seed=2):
        t = space.template(arch)
        assert list(t) == list(ZCU104_KNOBS)
        assert t == {k: arch[PREFIX + k] for k in ZCU104_KNOBS}


def test_combine_inverts_network_and_template(space):
    for arch in _archs(space, 25, seed=3):
        back = space.combine(space.network(arch), space.template(arch))
        assert back == arch and back.arch_id == arch.arch_id


def test_combine_defaults_and_partial_templates(space):
    net = space.base.sample(np.random.default_rng(4))
    joint = space.combine(net)
    assert space.template(joint) == ZCU104_DEFAULT
    assert space.network(joint).arch_id == space.base.canonicalize(net).arch_id
    partial = space.combine(net, {"pe_rows": 8})
    assert space.template(partial) == {**ZCU104_DEFAULT, "pe_rows": 8}
    assert space.largest() == space.combine(space.base.largest())
    assert space.smallest() == space.combine(space.base.smallest())
    assert space.template(space.largest()) == ZCU104_DEFAULT


def test_arch_id_follows_template_and_network(space):
    base = space.base
    nets = [base.sample(np.random.default_rng(s)) for s in range(4)]
    assert len({n.arch_id for n in nets}) == 4
    ids = {space.combine(n, t).arch_id for n in nets for t in ({"pe_rows": 8}, {"pe_rows": 16},
                                                                 {"dataflow": "output_stationary"})}
    assert len(ids) == 12  # every (network, template) pair has its own id
    a = space.combine(nets[0])
    assert a.arch_id == space.combine(nets[0], dict(ZCU104_DEFAULT)).arch_id
    assert len(a.arch_id) == 16 and int(a.arch_id, 16) >= 0


def test_inactive_network_settings_do_not_change_the_joint_id(space):
    base = space.base
    for arch in _archs(space, 10, seed=5):
        net = space.network(arch)
        off = sorted(base.inactive(net))
        if not off:
            continue
        flat = net.to_dict()
        for name in off:  # change every ignored setting to another option
            options = base.params[base.names.index(name)].options
            flat[name] = options[-1] if flat[name] != options[-1] else options[0]
        other = base.parse(flat)
        assert other != net and other.arch_id == net.arch_id
        template = space.template(arch)
        assert space.combine(other, template).arch_id == arch.arch_id
        raw = space.parse({**flat, **{PREFIX + k: v for k, v in template.items()}})
        assert raw.arch_id == arch.arch_id and space.canonicalize(raw) == arch
        assert space.inactive(raw) == base.inactive(other)
        break
    else:
        pytest.fail("no sampled arch had an inactive setting")


def test_hw_id_depends_on_the_template_only(space):
    nets = [space.base.sample(np.random.default_rng(s)) for s in range(3)]
    t1, t2 = {**ZCU104_DEFAULT, "pe_cols": 16}, {**ZCU104_DEFAULT, "weight_buffer_bytes": 32768}
    ids1 = {space.hw_id(space.combine(n, t1)) for n in nets}
    assert len(ids1) == 1
    (hw1,) = ids1
    assert hw1 == space.hw_id(t1)
    assert space.hw_id(space.combine(nets[0], t2)) == space.hw_id(t2) != hw1
    assert len({space.hw_id(t) for t in space.templates()[:64]}) == 64
    # JSON has one number type: 16.0 names the same template as 16
    assert space.hw_id({**t1, "pe_cols": 16.0}) == hw1
    assert space.combine(nets[0], {"pe_cols": 16.0}) == space.combine(nets[0], {"pe_cols": 16})
    # another device with the same knobs names other accelerators
    other = AcceleratorSpace(space.base, device="zcu104.toml", knobs=ZCU104_KNOBS, default=ZCU104_DEFAULT)
    assert other.hw_id(t1) != hw1


# ------------------------------------------------------------------ serialisation
def test_encode_decode_parse_to_dict_json_round_trips(space, qspace):
    for sp in (space, qspace):
        for arch in _archs(sp, 20, seed=6):
            codes = sp.encode(arch)
            assert codes.dtype == np.int64 and len(codes) == len(sp.params)
            assert all(0 <= c < len(p) for c, p in zip(codes, sp.params))
            assert sp.decode(codes) == arch and sp.decode(codes).arch_id == arch.arch_id
            assert sp.parse(arch.to_dict()) == arch
            back = sp.parse(json.loads(arch.to_json()))
            assert back == arch and back.arch_id == arch.arch_id


def test_nested_layout_parses_to_the_same_arch(space, qspace):
    for arch in _archs(space, 5, seed=7):
        nested = {"network": _base_part(space, arch), "accelerator": space.template(arch)}
        assert space.parse(json.loads(json.dumps(nested))) == arch
    # the base's OFA-style layout under "network"
    arch = _archs(space, 1, seed=8)[0]
    net = space.network(arch)
    ofa = {"ks": [net[f"ks_{i}"] for i in range(15)], "e": [net[f"e_{i}"] for i in range(15)],
           "d": [net[f"d_{i}"] for i in range(5)], "r": net["r"]}
    assert space.parse({"network": ofa, "accelerator": space.template(arch)}).arch_id == arch.arch_id
    # +q base: "quantization" beside "network", or the q_ settings inside "network"
    for arch in _archs(qspace, 5, seed=9):
        flat = arch.to_dict()
        network = {k: v for k, v in flat.items() if not k.startswith(("q_", PREFIX))}
        quant = {k: v for k, v in flat.items() if k.startswith("q_")}
        hw = qspace.template(arch)
        assert qspace.parse({"network": network, "quantization": quant, "accelerator": hw}) == arch
        assert qspace.parse({"network": {**network, **quant}, "accelerator": hw}) == arch


def test_nested_layout_errors(space):
    arch = space.largest()
    with pytest.raises(InvalidArchError) as err:
        space.parse({"network": [1, 2], "accelerator": space.template(arch)})
    assert "network" in _one_line(err)
    with pytest.raises(InvalidArchError) as err:
        space.parse({"network": _base_part(space, arch), "accelerator": {**space.template(arch), "pe_rowz": 8}})
    assert "hw_pe_rowz" in _one_line(err)


# ------------------------------------------------------------------ bad input
def test_bad_knob_names_and_values_are_one_line_invalid_arch_errors(space):
    net = space.base.largest()
    with pytest.raises(InvalidArchError) as err:
        space.combine(net, {"pe_rowz": 8})
    assert "pe_rowz" in _one_line(err)
    with pytest.raises(InvalidArchError) as err:
        space.combine(net, {"pe_rows": 12})
    assert "pe_rows" in _one_line(err) and "12" in str(err.value)
    with pytest.raises(InvalidArchError) as err:
        space.combine(net, {"dataflow": "row_stationary"})
    assert "row_stationary" in _one_line(err)
    with pytest.raises(InvalidArchError) as err:
        space.hw_id({"pe_rows": 8})  # a template dict must name every knob
    assert "pe_cols" in _one_line(err)
    with pytest.raises(InvalidArchError) as err:
        space.hw_id({**ZCU104_DEFAULT, "clock_hz": 1e8})
    assert "clock_hz" in _one_line(err)
    flat = space.largest().to_dict()
    with pytest.raises(InvalidArchError) as err:
        space.parse({**flat, "hw_pe_rows": 12})
    assert "hw_pe_rows" in _one_line(err)
    with pytest.raises(InvalidArchError) as err:
        space.parse({**flat, "hw_bogus": 1})
    assert "hw_bogus" in _one_line(err)
    del flat["hw_dataflow"]
    with pytest.raises(InvalidArchError) as err:
        space.parse(flat)
    assert "hw_dataflow" in _one_line(err)
    with pytest.raises(InvalidArchError):
        space.combine(space.largest())  # a joint arch is not a network
    with pytest.raises(InvalidArchError):
        space.decode(np.append(space.encode(space.largest())[:-1], 4))  # output buffer code out of range


def test_constructor_value_errors():
    base = tiny_mbv3()
    ok = dict(device="zcu104", knobs={"pe_rows": (8, 16)}, default={"pe_rows": 8})
    AcceleratorSpace(base, **ok)
    with pytest.raises(ValueError, match="no accelerator knobs"):
        AcceleratorSpace(base, device="zcu104", knobs={}, default={})
    with pytest.raises(ValueError, match=r"hw_pe_rows=12.*not among"):
        AcceleratorSpace(base, device="zcu104", knobs={"pe_rows": (8, 16)}, default={"pe_rows": 12})
    with pytest.raises(ValueError, match="lacks"):
        AcceleratorSpace(base, device="zcu104", knobs={"pe_rows": (8, 16)}, default={})
    for device in ("zc(u104", "zcu104)", "", "a(b)"):
        with pytest.raises(ValueError, match="parentheses"):
            AcceleratorSpace(base, device=device, knobs=ok["knobs"], default=ok["default"])
    joint = AcceleratorSpace(base, **ok)
    with pytest.raises(ValueError, match="already searches an accelerator"):
        AcceleratorSpace(joint, **ok)
    with pytest.raises(ValueError, match="already searches an accelerator"):
        with_accelerator(joint, **ok)
    with pytest.raises(ValueError):
        AcceleratorSpace(base, device="zcu104", knobs={"pe_rows": ()}, default={"pe_rows": 8})
    with pytest.raises(ValueError):
        AcceleratorSpace(base, device="zcu104", knobs={"pe_rows": (8, 8)}, default={"pe_rows": 8})


def test_get_space_errors():
    with pytest.raises(NASError) as err:
        get_space("tiny_mbv3+hw(no-such-board)")
    text = _one_line(err)
    assert "no-such-board" in text and "zcu104" in text  # lists the known profiles
    with pytest.raises(NASError) as err:
        get_space("tiny_mbv3+hw(host-cpu)")
    text = _one_line(err)
    assert "host-cpu" in text and "only fpga profiles" in text
    with pytest.raises(UnknownSpaceError) as err:
        get_space("tiny_mbv3+hw(zcu104)+hw(zcu104)")
    assert "already searches an accelerator" in _one_line(err)
    with pytest.raises(UnknownSpaceError):
        get_space("no_such_space+hw(zcu104)")


# ------------------------------------------------------------------ the base's facts
def test_layers_are_the_base_layers_of_the_network(space, qspace):
    for sp in (space, qspace):
        for arch in _archs(sp, 8, seed=10):
            expected = sp.base.layers(sp.base.parse(_base_part(sp, arch)))
            assert sp.layers(arch) == expected
            assert sp.input_shape(arch) == sp.base.input_shape(sp.network(arch))
            assert sp.active_block_labels(arch) == frozenset(r.block for r in expected)
        assert sp.block_labels() == sp.base.block_labels()
    # the template never changes the layer table
    net = space.base.largest()
    assert space.layers(space.combine(net, {"pe_rows": 8, "dataflow": "output_stationary"})) == \
        space.layers(space.combine(net))

"""FPGA costs of (network, template) pairs: the exact per-template models and the vectorised joint table."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from hw_profiles.block_table import NotDecomposableError
from hw_profiles.fpga import FpgaCostModel
from hw_profiles.profile import get_profile
from hw_profiles.template_table import TABLED, TemplateBlockTable, TemplateModels
from search_spaces import AcceleratorSpace, get_space, tiny_mbv3

NAME = "tiny_mbv3+hw(zcu104)"
WS, OS = "weight_stationary", "output_stationary"


@pytest.fixture(scope="module")
def space():
    return get_space(NAME)


@pytest.fixture(scope="module")
def models(space):
    return TemplateModels(space)


@pytest.fixture(scope="module")
def tables(space, models):
    return {m: TemplateBlockTable.fit(space, m, models=models) for m in TABLED}


def _independent(space, arch) -> dict:
    """The FPGA metrics of a joint arch from a profile whose spec carries the template, built here."""
    profile = get_profile(space.device)
    base = space.base
    network = base.parse({k: v for k, v in arch.to_dict().items() if not k.startswith("hw_")})
    spec = dataclasses.replace(profile.spec, **{k: arch["hw_" + k] for k in space.knobs})
    model = FpgaCostModel(dataclasses.replace(profile, spec=spec))
    return {k: m.value for k, m in model.metrics(base.layers(network)).items()}


def _hw_codes(space) -> np.ndarray:
    """``(T, n_knobs)`` hw codes of every template, in mixed-radix order (last knob fastest), built here."""
    return np.array(list(itertools.product(*[range(len(o)) for o in space.knobs.values()])), dtype=np.int64)


def _joint_codes(space, network) -> np.ndarray:
    base = space.base.encode(network)
    hw = _hw_codes(space)
    return np.hstack([np.broadcast_to(base, (len(hw), len(base))), hw])


def _close(a, b, rel=1e-9):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.all(np.abs(a - b) <= rel * np.maximum(np.abs(b), 1.0))


def test_exact_models_match_an_independently_built_model(space, models):
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        got = {k: m.value for k, m in models.metrics(arch).items()}
        assert got == pytest.approx(_independent(space, arch), rel=1e-12)


def test_table_equals_exact_model_on_random_joint_archs(space, models, tables):
    rng = np.random.default_rng(11)
    archs = [space.sample(rng) for _ in range(200)]
    codes = np.vstack([space.encode(a) for a in archs])
    exact = {m: np.array([models.metrics(a)[m].value for a in archs]) for m in TABLED}
    for metric in TABLED:
        got = tables[metric].evaluate(codes)
        assert got.shape == (200,)
        assert _close(got, exact[metric]), metric
    # the sample covers both outcomes and both dataflows
    assert 0 < exact["feasible"].sum() < 200
    assert {a["hw_dataflow"] for a in archs} == {WS, OS}


def test_table_on_raw_codes_with_inactive_settings(space, models, tables):
    """Codes straight from a searcher (ignored slots not reset) cost like their canonical arch."""
    rng = np.random.default_rng(12)
    raw = np.column_stack([rng.integers(len(p), size=50) for p in space.params])
    archs = [space.decode(row) for row in raw]
    assert any(space.canonicalize(a) != a for a in archs)
    for metric in ("latency_ms", "energy_mj"):
        exact = np.array([models.metrics(a)[metric].value for a in archs])
        assert _close(tables[metric].evaluate(raw), exact), metric


def test_resource_tables_by_hand(space, tables):
    templates = space.templates()
    codes = _joint_codes(space, space.base.largest())
    dsp = np.array([t["pe_rows"] * t["pe_cols"] / 2 for t in templates])  # int8: two MACs per DSP
    bram = np.array([sum(-(-t[b] // 2304) for b in ("input_buffer_bytes", "weight_buffer_bytes",
                                                     "output_buffer_bytes")) for t in templates])
    assert np.array_equal(tables["dsp"].evaluate(codes), dsp)
    assert np.array_equal(tables["bram18k"].evaluate(codes), bram)
    assert np.array_equal(tables["feasible"].evaluate(codes), ((dsp <= 1728) & (bram <= 624)).astype(float))
    assert not tables["feasible"].evaluate(codes)[[i for i, t in enumerate(templates)
                                                   if t["pe_rows"] == t["pe_cols"] == 64]].any()


def test_template_index_and_over_templates(space, tables):
    templates = space.templates()
    n_base = len(space.base.params)
    rng = np.random.default_rng(13)
    for i in (0, 1, 5, 700, 2047):  # the codes built here are those of the templates, in order
        net = space.base.sample(rng)
        assert np.array_equal(_joint_codes(space, net)[i], space.encode(space.combine(net, templates[i])))
    for _ in range(4):
        net = space.base.sample(rng)
        joint = _joint_codes(space, net)
        assert np.array_equal(tables["latency_ms"].template_index(joint), np.arange(len(templates)))
        base_codes = space.base.encode(net)
        assert np.array_equal(joint[:, :n_base], np.broadcast_to(base_codes, (len(templates), n_base)))
        for metric in TABLED:
            over = tables[metric].over_templates(base_codes)
            assert over.shape == (len(templates),)
            assert _close(over, tables[metric].evaluate(joint)), metric
    # over_templates on a fresh copy: callers may change it
    fixed = tables["dsp"].over_templates(space.base.encode(space.base.largest()))
    fixed[:] = -1
    assert (tables["dsp"].over_templates(space.base.encode(space.base.largest())) > 0).all()


def test_over_templates_matches_the_exact_model_on_a_few_templates(space, models, tables):
    net = space.base.sample(np.random.default_rng(14))
    over = tables["latency_ms"].over_templates(space.base.encode(net))
    templates = space.templates()
    for i in (0, 1, 255, 1024, 2047):
        exact = models.metrics(space.combine(net, templates[i]))["latency_ms"].value
        assert over[i] == pytest.approx(exact, rel=1e-9)


def test_profile_refs_name_the_changed_knobs(space, models):
    net = space.base.largest()
    default = models.metrics(space.combine(net))
    assert {m.profile for m in default.values()} == {"zcu104@2"}
    assert models.model_for(space.default_template) is models.model
    changed = models.metrics(space.combine(net, {"pe_rows": 16, "dataflow": OS}))
    ref = changed["latency_ms"].profile
    assert ref.startswith("zcu104@2+") and "pe_rows=16" in ref and f"dataflow={OS}" in ref
    assert "pe_cols" not in ref and "buffer" not in ref  # unchanged knobs are not tagged
    assert {m.profile for m in changed.values()} == {ref}
    assert models.model_for({**space.default_template, "pe_rows": 16}) is \
        models.model_for({**space.default_template, "pe_rows": 16})  # cached


def test_quantized_base_is_not_decomposable():
    qspace = get_space("tiny_mbv3+q+hw(zcu104)")
    for metric in ("latency_ms", "dsp"):
        with pytest.raises(NotDecomposableError):
            TemplateBlockTable.fit(qspace, metric)
    with pytest.raises(NotDecomposableError, match="bogus"):
        TemplateBlockTable.fit(get_space(NAME), "bogus")
    with pytest.raises(ValueError):
        TemplateModels(tiny_mbv3())


def test_custom_space_with_clock_and_bit_width_knobs_matches_the_exact_model():
    knobs = {"dataflow": (WS, OS), "pe_rows": (16, 32), "pe_cols": (8, 32), "bit_width": (8, 16),
             "clock_hz": (100e6, 200e6), "weight_buffer_bytes": (32768, 131072)}
    default = {"dataflow": WS, "pe_rows": 32, "pe_cols": 32, "bit_width": 8, "clock_hz": 200e6,
               "weight_buffer_bytes": 131072}
    space = AcceleratorSpace(tiny_mbv3(), device="zcu104", knobs=knobs, default=default)
    assert len(space.templates()) == 64
    models = TemplateModels(space)
    tables = {m: TemplateBlockTable.fit(space, m, models=models) for m in TABLED}
    rng = np.random.default_rng(15)
    archs = [space.sample(rng) for _ in range(60)]
    codes = np.vstack([space.encode(a) for a in archs])
    for metric in TABLED:
        exact = np.array([_independent(space, a)[metric] for a in archs])
        assert _close(tables[metric].evaluate(codes), exact), metric
    # halving the clock doubles the compute time but not the DDR time (its bandwidth is in bytes/s)
    net = space.base.largest()
    slow = tables["latency_ms"].evaluate(space.encode(space.combine(net, {"clock_hz": 100e6}))[None])
    fast = tables["latency_ms"].evaluate(space.encode(space.combine(net, {"clock_hz": 200e6}))[None])
    assert fast[0] < slow[0] <= 2 * fast[0]
    # 16-bit array: one DSP48E2 per MAC instead of two MACs per DSP
    wide = tables["dsp"].evaluate(space.encode(space.combine(net, {"bit_width": 16}))[None])
    narrow = tables["dsp"].evaluate(space.encode(space.combine(net))[None])
    assert (wide[0], narrow[0]) == (32 * 32, 32 * 32 / 2)

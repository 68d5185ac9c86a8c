"""Network x accelerator co-design search: joint, nested and sequential modes on ``tiny_mbv3+hw(zcu104)``."""

from __future__ import annotations

import numpy as np
import pytest

import hw_profiles  # noqa: F401  registers the accelerator template source
from hw_profiles import macs
from hw_profiles.template_table import TemplateModels
from nas._config_io import ConfigError
from nas.jobs.codesign import MODES, TemplatePicker, check_mode, nested_searcher
from nas.jobs.config import SearchConfig
from nas.jobs.evaluator import Evaluator
from nas.jobs.objectives import Constraint, MetricCatalog, Objective
from nas.jobs.results import load_job
from nas.jobs.search import search
from nas.searchers import create_searcher, list_searchers
from search_spaces import AcceleratorSpace, NASError, get_space, tiny_mbv3

NAME = "tiny_mbv3+hw(zcu104)"
DSP, BRAM = "zcu104.dsp <= 1728", "zcu104.bram18k <= 624"
WS, OS = "weight_stationary", "output_stationary"
BUDGET = 12


@pytest.fixture(scope="module")
def space() -> AcceleratorSpace:
    return get_space(NAME)


@pytest.fixture(scope="module")
def catalog(space) -> MetricCatalog:
    """One catalog for the searches on ``space``: its joint tables are fitted once (they are pure caches)."""
    return MetricCatalog(space)


@pytest.fixture(scope="module")
def small_space() -> AcceleratorSpace:
    """36 templates, the 64 x 64 ones (2,048 DSP) over the device's 1,728."""
    knobs = {"dataflow": (WS, OS), "pe_rows": (16, 32, 64), "pe_cols": (16, 32, 64),
             "weight_buffer_bytes": (32768, 131072)}
    default = {"dataflow": WS, "pe_rows": 32, "pe_cols": 32, "weight_buffer_bytes": 131072}
    return AcceleratorSpace(tiny_mbv3(), device="zcu104", knobs=knobs, default=default)


@pytest.fixture(scope="module")
def small_catalog(small_space) -> MetricCatalog:
    return MetricCatalog(small_space)


class Accuracy:
    """A deterministic stand-in for accuracy, a function of the network half only; records its calls."""

    def __init__(self, space: AcceleratorSpace) -> None:
        self.space, self.calls = space, []

    def __call__(self, arch) -> float:
        assert arch.space == self.space.name  # it gets the joint arch
        net = self.space.network(arch)
        self.calls.append((net.arch_id, arch))
        return float(np.log(macs(self.space.base.layers(net))))

    @property
    def networks(self) -> list[str]:
        return [n for n, _ in self.calls]


def _objectives(acc, *extra):
    return [Objective("acc", acc, direction="maximize"), Objective("lat", "zcu104.latency_ms"),
            Objective("energy", "zcu104.energy_mj"), *extra]


def _storage(tmp_path) -> str:
    return "sqlite:///" + str(tmp_path / "s.db")


def _dsp(template) -> float:
    return template["pe_rows"] * template["pe_cols"] / 2  # int8 on zcu104: two MACs per DSP48E2


def _bram(template) -> int:
    return sum(-(-template[b] // 2304) for b in ("input_buffer_bytes", "weight_buffer_bytes", "output_buffer_bytes"))


def _full_template(space, arch) -> dict:
    return {**hw_profiles.get_profile("zcu104").spec.__dict__, **space.template(arch)}


def _check_complete_trials_feasible(space, records):
    for r in records:
        if r.state != "complete":
            continue
        arch = space.parse(dict(r.arch))
        t = _full_template(space, arch)
        assert _dsp(t) <= 1728 and _bram(t) <= 624, r.arch
        assert r.constraints[DSP] <= 0 and r.constraints[BRAM] <= 0 and r.feasible


def _check_pruned_infeasible(space, records, acc):
    evaluated = {a.arch_id for _, a in acc.calls}
    for r in records:
        if r.state == "pruned":
            t = _full_template(space, space.parse(dict(r.arch)))
            assert _dsp(t) > 1728 or _bram(t) > 624
            assert max(r.constraints[DSP], r.constraints[BRAM]) > 0 and not r.feasible
            assert r.arch_id not in evaluated  # never reached the expensive objective


# ------------------------------------------------------------------ every mode, every searcher
FAST = {("joint", "nsga2"), ("joint", "linas"), ("nested", "random"), ("sequential", "random")}
# every searcher on the joint genome; nested and sequential drive the same searchers through one wrapper
# (NestedSearcher), so three kinds of searcher cover them: random, population-based and predictor-guided
WRAPPED = ("random", "nsga2", "linas")
MATRIX = [pytest.param(mode, alg, marks=() if (mode, alg) in FAST else pytest.mark.slow, id=f"{mode}-{alg}")
          for mode in MODES for alg in list_searchers() if mode == "joint" or alg in WRAPPED]


@pytest.mark.parametrize("mode, algorithm", MATRIX)
def test_every_mode_and_searcher_finishes_with_the_budget(space, catalog, tmp_path, mode, algorithm):
    acc = Accuracy(space)
    storage = _storage(tmp_path)
    result = search(space, _objectives(acc), algorithm=algorithm, budget=BUDGET, seed=0, storage=storage,
                    job="cd", progress=False, codesign=mode, catalog=catalog)
    records = result.records()
    complete = [r for r in records if r.state == "complete"]
    assert not [r for r in records if r.state == "fail"]
    _check_complete_trials_feasible(space, records)
    _check_pruned_infeasible(space, records, acc)
    config = result.job.job_config
    assert config.extra["codesign"] == mode
    assert set(config.constraints) == {DSP, BRAM}
    if mode != "sequential":
        assert len(complete) == BUDGET
        assert sorted(acc.networks) == sorted(space.network(space.parse(dict(r.arch))).arch_id for r in complete)
        return
    first = load_job("cd.network", storage=storage, space=space)
    assert config.extra["network_job"] == "cd.network"
    assert first.job.job_config.extra["codesign"] == "sequential:network-stage"
    first_complete = [r for r in first.records() if r.state == "complete"]
    assert len(first_complete) == BUDGET
    assert all(space.template(space.parse(dict(r.arch))) == space.default_template for r in first_complete)
    front = {space.network(space.parse(dict(r.arch))).arch_id for r in first.front_records()}
    assert front and len(complete) == len(front) == config.budget
    assert {space.network(space.parse(dict(r.arch))).arch_id for r in complete} == front
    picker = TemplatePicker(Evaluator(space, _objectives(acc), catalog=catalog))
    for r in complete:
        arch = space.parse(dict(r.arch))
        assert picker.pick(space.network(arch)) == arch
    # the budget's networks are the only ones evaluated (the second stage re-runs a user function on
    # front networks only: there is no checkpoint evaluation cache for it)
    stage_one = acc.networks[:BUDGET]
    assert len(set(stage_one)) == BUDGET and set(acc.networks) == set(stage_one)


# ------------------------------------------------------------------ what the evaluator adds
def test_device_constraints_are_automatic_and_screened(space):
    acc = Accuracy(space)
    evaluator = Evaluator(space, _objectives(acc))
    labels = [c.label for c in evaluator.constraints]
    assert labels == [DSP, BRAM]
    given = Evaluator(space, _objectives(acc), [Constraint("zcu104.dsp", "<=", 1728)])
    assert [c.label for c in given.constraints] == [DSP, BRAM]  # not added twice
    assert Evaluator(tiny_mbv3(), [Objective("m", "macs")]).constraints == []
    net = space.base.largest()
    big = space.combine(net, {"pe_rows": 64, "pe_cols": 64})
    fat = space.combine(net, {"input_buffer_bytes": 524288, "output_buffer_bytes": 524288,
                              "weight_buffer_bytes": 262144})  # 228 + 114 + 228 = 570 BRAM18K: fits
    (o_big, o_fat, o_ok) = evaluator.screen([big, fat, space.combine(net)])
    assert o_big.rejected and o_big.constraints[DSP] == 2048 - 1728 and o_big.constraints[BRAM] <= 0
    assert not o_fat.rejected and o_fat.constraints[BRAM] == 570 - 624
    assert not o_ok.rejected
    assert acc.calls == []  # screening never runs the expensive objective
    # the hardware metrics are those of each arch's own template
    models = TemplateModels(space)
    for o in (o_big, o_fat, o_ok):
        assert o.metrics["lat"].value == pytest.approx(models.metrics(o.arch)["latency_ms"].value, rel=1e-12)
        assert o.metrics["lat"].profile == models.metrics(o.arch)["latency_ms"].profile
    assert o_big.metrics["lat"].value != o_ok.metrics["lat"].value


def test_infeasible_templates_are_pruned_never_complete(small_space, small_catalog, tmp_path):
    acc = Accuracy(small_space)
    result = search(small_space, _objectives(acc), algorithm="random", budget=BUDGET, seed=1,
                    storage=_storage(tmp_path), job="p", progress=False, codesign="joint", catalog=small_catalog)
    records = result.records()
    pruned = [r for r in records if r.state == "pruned"]
    assert pruned  # a quarter of the templates is 64 x 64
    assert all(small_space.template(small_space.parse(dict(r.arch)))["pe_rows"] == 64 for r in pruned)
    assert all(r.constraints[DSP] == 2048 - 1728 for r in pruned)
    assert sum(r.state == "complete" for r in records) == BUDGET
    _check_complete_trials_feasible(small_space, records)
    _check_pruned_infeasible(small_space, records, acc)
    # the recorded hardware metrics are the exact ones of each trial's template
    models = TemplateModels(small_space)
    for r in records:
        exact = models.metrics(small_space.parse(dict(r.arch)))
        assert r.value("lat") == pytest.approx(exact["latency_ms"].value, rel=1e-9)
        assert r.value("energy") == pytest.approx(exact["energy_mj"].value, rel=1e-9)


def test_cheap_objectives_codes_equal_evaluate(space, small_space):
    for sp in (space, small_space):
        acc = Accuracy(sp)
        # a metric of another device (not on the template) and a constraint on it ride along
        evaluator = Evaluator(sp, _objectives(acc, Objective("dsp", "zcu104.dsp"),
                                              Objective("mcu", "stm32f746.latency_ms")),
                              [Constraint("stm32f746.peak_sram_kb", "<=", 200)])
        cheap = evaluator.cheap_objectives()
        assert cheap.indices == (1, 2, 3, 4)
        assert cheap.evaluate_codes is not None and cheap.canonical_codes is not None
        rng = np.random.default_rng(3)
        raw = np.column_stack([rng.integers(len(p), size=40) for p in sp.params])
        archs = [sp.canonicalize(sp.decode(row)) for row in raw]
        codes = np.vstack([sp.encode(a) for a in archs])
        assert np.array_equal(cheap.canonical_codes(raw), codes)
        F1, G1 = cheap.evaluate(archs)
        F2, G2 = cheap.evaluate_codes(codes)
        assert np.isnan(F1[:, 0]).all() and np.isnan(F2[:, 0]).all()
        np.testing.assert_allclose(F2[:, 1:], F1[:, 1:], rtol=1e-9)
        np.testing.assert_allclose(G2, G1, rtol=1e-9, atol=1e-9)
        assert [c.label for c in evaluator.constraints] == ["stm32f746.peak_sram_kb <= 200", DSP, BRAM]
        assert (G1[:, 1] > 0).any() or sp is space  # the small space always samples some 64 x 64
        # the MCU column does not depend on the template
        mcu = [a for a in archs if sp.template(a) != sp.default_template][:5]
        F3, _ = cheap.evaluate([sp.combine(sp.network(a)) for a in mcu])
        np.testing.assert_allclose(F3[:, 4], cheap.evaluate(mcu)[0][:, 4], rtol=1e-12)
        assert acc.calls == []


# ------------------------------------------------------------------ nested
def _brute_force_cost(space, models, network, terms):
    """``(T,)`` scalarised cost by hand: sum of sign * log(m / m(default)), inf where infeasible."""
    rows = space.base.layers(network)
    per = [models.model_for(t).metrics(rows) for t in space.templates()]
    default = space.templates().index(space.default_template)
    cost = np.zeros(len(per))
    for metric, sign in terms:
        v = np.array([p[metric].value for p in per])
        cost += sign * np.log(v / v[default])
    feasible = np.array([p["feasible"].value for p in per]) >= 1
    return np.where(feasible, cost, np.inf), feasible


def test_nested_pairs_each_network_with_its_cheapest_feasible_template(small_space, small_catalog, tmp_path):
    acc = Accuracy(small_space)
    objectives = _objectives(acc, Objective("dsp", "zcu104.dsp"))
    result = search(small_space, objectives, algorithm="nsga2", budget=BUDGET, seed=2,
                    storage=_storage(tmp_path), job="n", progress=False, codesign="nested", catalog=small_catalog)
    records = result.records()
    complete = [r for r in records if r.state == "complete"]
    assert len(complete) == BUDGET and not [r for r in records if r.state != "complete"]
    picker = TemplatePicker(Evaluator(small_space, objectives, catalog=small_catalog))
    assert sorted(picker.terms) == [("dsp", 1.0), ("energy_mj", 1.0), ("latency_ms", 1.0)]
    models = TemplateModels(small_space)
    for r in complete:
        arch = small_space.parse(dict(r.arch))
        network = small_space.network(arch)
        assert picker.pick(network) == arch
        cost, feasible = _brute_force_cost(small_space, models, network, picker.terms)
        chosen = small_space.templates().index(small_space.template(arch))
        assert feasible[chosen] and cost[chosen] <= cost.min() + 1e-12
    # nested evaluates each network once, on one accelerator
    assert len(acc.networks) == BUDGET == len(set(acc.networks))
    assert all(small_space.template(a) == small_space.template(picker.pick(small_space.network(a)))
               for _, a in acc.calls)


@pytest.mark.slow
def test_nested_on_zcu104_against_brute_force(space, catalog, tmp_path):
    acc = Accuracy(space)
    result = search(space, _objectives(acc), algorithm="random", budget=2, seed=3, storage=_storage(tmp_path),
                    job="z", progress=False, codesign="nested", catalog=catalog)
    complete = [r for r in result.records() if r.state == "complete"]
    assert len(complete) == 2 and len(set(acc.networks)) == 2 == len(acc.networks)
    picker = TemplatePicker(Evaluator(space, _objectives(acc)))
    assert picker.vectorised
    models = TemplateModels(space)
    for r in complete[:1]:  # 2,048 exact models per network
        arch = space.parse(dict(r.arch))
        cost, feasible = _brute_force_cost(space, models, space.network(arch), picker.terms)
        chosen = space.templates().index(space.template(arch))
        assert feasible[chosen] and cost[chosen] <= cost.min() + 1e-9
        np.testing.assert_allclose(picker.cost(space.network(arch)), cost, rtol=1e-9)


def test_picker_terms_and_default_cost(space):
    acc = Accuracy(space)
    picker = TemplatePicker(Evaluator(space, [Objective("acc", acc, direction="maximize"), Objective("m", "macs")]))
    assert picker.terms == [("latency_ms", 1.0), ("energy_mj", 1.0)]  # none of zcu104: the energy-delay product
    picker = TemplatePicker(Evaluator(space, [Objective("acc", acc), Objective("d", "zcu104.dsp", direction="maximize")]))
    assert picker.terms == [("dsp", -1.0)]
    # maximising DSP use: the biggest array that fits, 64 x 32 or 32 x 64 (1,024 DSP)
    arch = picker.pick(space.base.largest())
    t = space.template(arch)
    assert t["pe_rows"] * t["pe_cols"] == 2048
    with pytest.raises(ValueError):
        TemplatePicker(Evaluator(tiny_mbv3(), [Objective("m", "macs")]))


def test_nested_linas_cheap_hook_codes_equal_evaluate(space):
    acc = Accuracy(space)
    evaluator = Evaluator(space, _objectives(acc))
    searcher = nested_searcher("linas", evaluator, 0)
    cheap = searcher.inner.cheap
    assert searcher.inner.space is space.base and cheap.evaluate_codes is not None
    rng = np.random.default_rng(4)
    nets = [space.base.sample(rng) for _ in range(6)]
    codes = np.vstack([space.base.encode(n) for n in nets])
    F1, G1 = cheap.evaluate(nets)
    F2, G2 = cheap.evaluate_codes(codes)
    np.testing.assert_allclose(F2[:, 1:], F1[:, 1:], rtol=1e-9)
    np.testing.assert_allclose(G2, G1, rtol=1e-9, atol=1e-9)
    raw = np.column_stack([rng.integers(len(p), size=10) for p in space.base.params])
    expected = np.vstack([space.base.encode(space.base.canonicalize(space.base.decode(r))) for r in raw])
    assert np.array_equal(cheap.canonical_codes(raw), expected)
    assert acc.calls == []


# ------------------------------------------------------------------ config, modes, resume
def test_config_and_mode_checks(space, tmp_path):
    blob = {"search": {"space": NAME}, "codesign": {"mode": "bogus"},
            "objectives": [{"name": "lat", "metric": "zcu104.latency_ms"}]}
    with pytest.raises(ConfigError, match="bogus"):
        SearchConfig.from_dict(blob)
    blob["codesign"]["mode"] = "nested"
    config = SearchConfig.from_dict(blob)
    assert config.codesign.mode == "nested" and config.to_dict()["codesign"] == {"mode": "nested"}
    assert SearchConfig.from_stored(config.to_dict()).codesign.mode == "nested"
    del blob["codesign"]
    assert SearchConfig.from_dict(blob).codesign.mode == "joint"
    plain = tiny_mbv3()
    for mode in ("nested", "sequential"):
        with pytest.raises(ConfigError, match=mode):
            check_mode(mode, plain)
        with pytest.raises(ConfigError):
            search(plain, [Objective("m", "macs")], budget=2, progress=False, codesign=mode,
                   storage=_storage(tmp_path))
    with pytest.raises(ConfigError, match="bogus"):
        check_mode("bogus", space)
    check_mode("joint", plain)
    for mode in MODES:
        check_mode(mode, space)


@pytest.mark.parametrize("mode", ["joint", "nested", pytest.param("sequential", marks=pytest.mark.slow)])
def test_resuming_a_finished_job_adds_no_trials(space, catalog, tmp_path, mode):
    storage = _storage(tmp_path)
    acc = Accuracy(space)
    first = search(space, _objectives(acc), algorithm="random", budget=6, seed=5, storage=storage, job="r",
                   progress=False, codesign=mode, catalog=catalog)
    n_trials, n_calls = len(first.job.records()), len(acc.calls)
    assert n_trials >= 1 and n_calls >= 6
    network_trials = len(load_job("r.network", storage=storage, space=space).job.records()) \
        if mode == "sequential" else None
    again = search(space, _objectives(acc), algorithm="random", budget=6, seed=5, storage=storage, job="r",
                   progress=False, codesign=mode, catalog=catalog)
    assert len(again.job.records()) == n_trials and len(acc.calls) == n_calls
    assert [r.arch_id for r in again.records()] == [r.arch_id for r in first.records()]
    if mode == "sequential":
        assert len(load_job("r.network", storage=storage, space=space).job.records()) == network_trials


@pytest.mark.slow
def test_resuming_nested_with_a_larger_budget_evaluates_only_new_networks(space, catalog, tmp_path):
    storage = _storage(tmp_path)
    acc = Accuracy(space)
    search(space, _objectives(acc), algorithm="nsga2", budget=4, seed=6, storage=storage, job="g", progress=False,
           codesign="nested", catalog=catalog)
    more = search(space, _objectives(acc), algorithm="nsga2", budget=9, seed=6, storage=storage, job="g",
                  progress=False, codesign="nested", catalog=catalog)
    assert len(acc.networks) == 9 == len(set(acc.networks))
    assert sum(r.state == "complete" for r in more.records()) == 9
    assert more.job.job_config.budget == 9 and more.job.job_config.extra["codesign"] == "nested"


def test_unknown_modes_are_config_errors_even_on_a_plain_space(tmp_path):
    for mode in ("default-template", "nested"):
        with pytest.raises(NASError):
            search(tiny_mbv3(), [Objective("m", "macs")], budget=2, progress=False, codesign=mode,
                   storage=_storage(tmp_path))


def test_a_job_resumed_in_another_mode_is_refused(tmp_path):
    space = get_space("tiny_mbv3+hw(zcu104)")
    objectives = [Objective("lat", "zcu104.latency_ms"), Objective("m", "macs")]
    storage = _storage(tmp_path)
    search(space, objectives, budget=2, seed=0, storage=storage, job="m", progress=False, codesign="joint")
    with pytest.raises(NASError, match="mode"):
        search(space, objectives, budget=3, seed=0, storage=storage, job="m", progress=False, codesign="nested")


@pytest.mark.slow
def test_nested_on_a_quantized_base_uses_the_exact_per_template_path(tmp_path):
    qspace = get_space("tiny_mbv3+q+hw(zcu104)")
    acc = Accuracy(qspace)
    objectives = _objectives(acc)
    picker = TemplatePicker(Evaluator(qspace, objectives))
    assert not picker.vectorised  # mixed-precision rows do not decompose
    result = search(qspace, objectives, algorithm="random", budget=2, seed=0, storage=_storage(tmp_path),
                    job="q", progress=False, codesign="nested")
    complete = [r for r in result.records() if r.state == "complete"]
    assert len(complete) == 2 and len(set(acc.networks)) == 2
    models = TemplateModels(qspace)
    arch = qspace.parse(dict(complete[0].arch))
    cost, feasible = _brute_force_cost(qspace, models, qspace.network(arch), picker.terms)
    chosen = qspace.templates().index(qspace.template(arch))
    assert feasible[chosen] and cost[chosen] <= cost.min() + 1e-12


def test_linas_predictor_sees_only_the_network_columns(space):
    searcher = create_searcher("linas", space=space, n_objectives=2, n_constraints=0, seed=0)
    rng = np.random.default_rng(6)
    archs = [space.sample(rng) for _ in range(5)]
    codes = np.vstack([space.encode(a) for a in archs])
    n_net = len(space.base.params)
    width = int(sum(len(p) for p in space.base.params)) + n_net  # one-hot and ordinal position per setting
    X = searcher._one_hot(codes)
    assert X.shape == (5, width)
    assert width < int(sum(len(p) for p in space.params)) + len(space.params)
    # two archs with the same network on different templates have the same features
    net = space.network(archs[0])
    a, b = space.combine(net, {"pe_rows": 8}), space.combine(net, {"pe_rows": 64, "dataflow": OS})
    Xa, Xb = searcher._one_hot(np.vstack([space.encode(a), space.encode(b)]))
    assert np.array_equal(Xa, Xb) and Xa[:-n_net].sum() == n_net  # one hot per network setting
    Fa, Fb = searcher._all_columns(np.vstack([space.encode(a), space.encode(b)]))
    assert not np.array_equal(Fa, Fb)  # objectives that depend on the accelerator see its columns


def test_only_accuracy_like_objectives_are_network_only(space):
    """A user (accuracy) function sees the network; a named expensive device metric sees both halves."""
    evaluator = Evaluator(space, [Objective("acc", lambda a: 0.5, direction="maximize"),
                                  Objective("lat", "zcu104.latency_ms"), Objective("zz", "zcu104.zigzag_latency_ms")])
    cheap = evaluator.cheap_objectives()
    assert cheap.indices == (1,) and cheap.network_only == (0,)
    searcher = create_searcher("linas", space=space, n_objectives=3, n_constraints=2, seed=0, cheap=cheap)
    assert searcher.predicted == [0, 2] and searcher._network_only == (0,)
    plain = Evaluator(get_space("tiny_mbv3"), [Objective("acc", lambda a: 0.5), Objective("m", "macs")])
    assert plain.cheap_objectives().network_only == ()


@pytest.mark.slow
def test_zigzag_cross_check_is_an_expensive_metric_on_each_trials_own_template():
    """``zcu104.zigzag_latency_ms``: ZigZag's estimate of the arch on its own accelerator, run after screening."""
    from hw_profiles.template_table import TemplateModels
    from hw_profiles.zigzag_engine import zigzag_metrics

    space = get_space("tiny_mbv3+hw(zcu104)")
    evaluator = Evaluator(space, [Objective("lat", "zcu104.latency_ms"), Objective("zz", "zcu104.zigzag_latency_ms")])
    assert evaluator.is_cheap("lat") and not evaluator.is_cheap("zz")
    arch = space.combine(space.base.smallest(), {"pe_rows": 8, "pe_cols": 16, "dataflow": "output_stationary"})
    screened = evaluator.screen([arch])
    assert "zz" not in screened[0].metrics  # expensive: not computed while screening
    (outcome,) = evaluator.complete(screened)
    model = TemplateModels(space).model_for(space.template(arch))
    expected = zigzag_metrics(space.layers(arch), model.spec, profile_ref=model.profile.ref)["latency_ms"]
    got = outcome.metrics["zz"]
    assert got.value == expected.value and got.source == "estimated"
    assert got.profile.startswith("zigzag-dse@") and "dataflow=output_stationary" in got.profile
    assert got.profile.endswith(outcome.metrics["lat"].profile)
    with pytest.raises(NASError, match="no metric"):
        Evaluator(space, [Objective("x", "zcu104.zigzag_power")])


def test_a_sequential_job_resumed_with_auto_keeps_its_searcher(space, catalog, tmp_path):
    acc = Accuracy(space)
    storage = _storage(tmp_path)
    search(space, _objectives(acc), algorithm="random", budget=BUDGET, seed=0, storage=storage, job="cd",
           progress=False, codesign="sequential", catalog=catalog)
    again = search(space, _objectives(acc), budget=BUDGET + 2, seed=0, storage=storage, job="cd", progress=False,
                   codesign="sequential", catalog=catalog)  # auto would pick linas (accuracy is expensive)
    assert again.job.job_config.algorithm == "random"
    network = load_job("cd.network", storage=storage, space=space)
    assert network.job.job_config.algorithm == "random"
    assert network.job.predictor_report is None  # linas would have recorded its predictor

"""Hostile latency model files (issue 18, part 4): ``latency_model.json`` is untrusted input with one schema.

``LatencyModel.load`` checks every key, type, finite range and array length of the file
(``nas.profiling.latency_model.SCHEMA``), that its report describes it, and that the arch-level
vectors have the space's feature count; a bad file is one ``LatencyModelError`` line naming the file
and the key, never an AttributeError/TypeError/ZeroDivisionError traceback. A Hypothesis property:
any mutation of a real model file loads as a model whose predictions are finite, or is refused with
one line.

The model file is written by ``profile_device`` as ``tests/nas/profiling`` does, with the timing
replaced by a stand-in (latency grows with the module's parameters): the real run takes ~20 s here,
and the file's content, not the timings, is what is under test.
"""

from __future__ import annotations

import copy
import json
import math
import re

import pytest
from _mutations import (ANY_FLOAT, INT64, PAST_INT64, mutate, mutations, nested, now_and_then_overwrite_bytes, set_key,
                        tally_examples)
from conftest import check_one_line, refuse_load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw_profiles import MeasuredCostModel, Metric
from hw_profiles.measured import PairedMetric
from nas.profiling.device import ProfileSettings, profile_device
from nas.profiling.latency_model import LatencyModel, LatencyModelError
from search_spaces import NASError, get_space

SPACE = get_space("tiny_mbv3")
ARCHS = []  # three of the measured subnets (every layer in the table), set by the fixture


def _stand_in(self, items, reference):
    """``MeasuredCostModel.measure_paired`` without timing: ms from each module's parameter count."""
    def ms(module):
        return 0.01 + 1e-5 * sum(p.numel() for p in module.parameters())

    ref = ms(reference[0])
    return [PairedMetric(item=Metric(value=ms(module), unit="ms", source="measured", profile=self.profile.ref,
                                     spread=0.001), reference_ms=ref, ratio=ms(module) / ref, ratio_iqr=0.001 / ref)
            for module, _ in items]


@pytest.fixture(scope="module")
def model_text(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("latency_model") / "host"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MeasuredCostModel, "measure_paired", _stand_in)
        profile_device(SPACE, "host-cpu", out, progress=False,
                       settings=ProfileSettings(samples=12, coverage=0, repeats=1, warmup=0, seed=3))
    text = (out / "latency_model.json").read_text(encoding="utf-8")
    assert all(json.loads(text)["report"]["intervals"].values())  # 10 fit subnets: the mutations reach intervals
    rows = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    ARCHS[:] = [SPACE.parse(row["arch"]) for row in rows[:3]]
    for predictor in ("kernel_level", "arch_level"):  # the untouched file loads and predicts
        assert all(m.value > 0 for m in LatencyModel.load(out, space=SPACE).predict(ARCHS, predictor=predictor))
    return text


# name: (edit of the parsed document, what the one line must say); every one crashed or loaded before
BAD = {
    "kernel coef too short": (set_key("kernel_level.coef", [1.0, 2.0]), "kernel_level.coef must have 3 items, got 2"),
    "kernel coef a string": (set_key("kernel_level.coef.0", "a"), "kernel_level.coef[0] must be a finite number"),
    "kernel coef negative": (set_key("kernel_level.coef.2", -5.0), "kernel_level.coef[2] must be a finite number >= 0"),
    "arch vectors of another length": (lambda d: d["arch_level"]["mean"].pop(), "arch_level.mean must have"),
    "arch scale zero (division by zero)": (set_key("arch_level.scale.3", 0.0),
                                           "arch_level.scale[3] must be a finite number > 0"),
    "arch coef nan": (set_key("arch_level.coef.0", math.nan), "arch_level.coef[0] must be a finite number"),
    "arch intercept inf": (set_key("arch_level.intercept", math.inf), "arch_level.intercept must be a finite number"),
    "an integer past the float range": (set_key("arch_level.intercept", 10**400),
                                        "arch_level.intercept must be a finite number"),
    "arch alpha negative": (set_key("arch_level.alpha", -1.0), "arch_level.alpha must be a finite number >= 0"),
    "layer latency nan": (set_key("kernel_level.layers.0.latency_ms", math.nan),
                          "kernel_level.layers[0].latency_ms must be a finite number >= 0"),
    "layer op unknown": (set_key("kernel_level.layers.1.op", "attention"), "kernel_level.layers[1].op must be one of"),
    "layer groups that do not divide": (set_key("kernel_level.layers.0.groups", 3), "kernel_level: LayerSpec.groups=3"),
    "layer in_hw of one number": (set_key("kernel_level.layers.0.in_hw", [32]),
                                  "kernel_level.layers[0].in_hw must have 2 items, got 1"),
    "no layers": (set_key("kernel_level.layers", []), "kernel_level.layers must have 1 to"),
    "a layer that is a list": (set_key("kernel_level.layers.0", [1, 2]), "kernel_level.layers[0] must be an object"),
    "held_out a list (AttributeError on predict)": (set_key("report.held_out", []),
                                                    "report.held_out must be an object"),
    "held-out rmse a string": (set_key("report.held_out.kernel_level.rmse", "low"),
                               "report.held_out.kernel_level.rmse must be a finite number"),
    "report summary a string": (set_key("report.latency_ms", "fast"), "report.latency_ms must be an object"),
    "threads a string": (set_key("threads", "two"), "threads must be an integer >= 0"),
    "default unknown": (set_key("default", "oracle"), "default must be one of ['kernel_level', 'arch_level']"),
    "profile a number": (set_key("profile", 5), "profile must be a string, got 5"),
    "profile without a version": (set_key("profile", "host-cpu"), "profile must be a device profile's name@version"),
    "report of another device": (set_key("report.device", "a100@1"), "report.device='a100@1' differs from profile="),
    "backend unknown": (set_key("backend", "tensorrt"), "backend must be one of"),
    "kind swapped": (set_key("kernel_level.kind", "arch_level"), "kernel_level.kind must be one of ['kernel_level']"),
    "space a list": (set_key("space", ["tiny_mbv3"]), "space must be a string"),
    "top-level a list": (lambda d: d.clear(), None),  # replaced by [] below
}


@pytest.mark.parametrize(("edit", "expected"), BAD.values(), ids=BAD.keys())
def test_a_crafted_model_file_is_one_line_naming_file_and_key(tmp_path, model_text, edit, expected):
    doc = json.loads(model_text)
    edit(doc)
    if expected is None:
        doc, expected = [doc], "format_version must be 1 (a `nas profile` latency model), got a JSON list"
    path = tmp_path / "latency_model.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    message = refuse_load("latency_model_json", lambda: LatencyModel.load(tmp_path, space=SPACE), contains=expected)
    assert str(path) in message


def test_a_search_config_naming_a_crafted_model_is_one_line(hostile_cli, tmp_path, model_text):
    folder = tmp_path / "profile"
    folder.mkdir()
    doc = json.loads(model_text)
    doc["arch_level"]["scale"][0] = 0.0  # once a division by zero at predict time: inf latencies
    (folder / "latency_model.json").write_text(json.dumps(doc))
    config = tmp_path / "search.toml"
    config.write_text(f'[search]\nspace = "tiny_mbv3"\nstorage = "sqlite:///{tmp_path}/nas.db"\nbudget = 2\n'
                      '[latency_models]\nhost-cpu = "profile"\n'
                      '[[objectives]]\nname = "lat"\nmetric = "host-cpu.latency_ms"\n')
    line = hostile_cli(["search", str(config), "--no-progress", "--no-baseline"], watch=[tmp_path],
                       contains="arch_level.scale[0] must be a finite number > 0")
    assert str(folder / "latency_model.json") in line


RAW = {  # the file's bytes, not its document
    "an integer literal past Python's digit limit":
        lambda text: re.sub(r'"threads": \d+', '"threads": ' + "9" * 5000, text, count=1),
    "nested too deeply": lambda text: "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("edit", RAW.values(), ids=RAW.keys())
def test_a_crafted_json_text_is_one_line(tmp_path, model_text, edit):
    path = tmp_path / "latency_model.json"
    path.write_text(edit(model_text), encoding="utf-8")
    refuse_load("latency_model_json", lambda: LatencyModel.load(path, space=SPACE), contains=str(path))


def test_a_path_with_a_nul_is_one_line(tmp_path):  # e.g. a "\u0000" escape in a config's [latency_models]
    refuse_load("latency_model_json", lambda: LatencyModel.load(f"{tmp_path}/x\0"), contains="cannot read latency model")


# A regression guard for the malformed files the brief lists: these were refused before issue 18 too.
MALFORMED = {
    "empty file": (b"", "is not valid JSON"),
    "binary garbage": (bytes(range(256)) * 4, "is not valid JSON"),
    "format version 2": (b'{"format_version": 2}', "format_version"),
    "missing report": (None, "report"),
}


@pytest.mark.parametrize(("data", "expected"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_model_file_is_one_line(tmp_path, model_text, data, expected):
    if data is None:
        doc = json.loads(model_text)
        del doc["report"]
        data = json.dumps(doc).encode()
    path = tmp_path / "latency_model.json"
    path.write_bytes(data)
    refuse_load("latency_model_json", lambda: LatencyModel.load(path, space=SPACE), contains=expected)


# ------------------------------------------------------------------------------------------ property
SCALARS = st.one_of(
    INT64,
    PAST_INT64,
    ANY_FLOAT,
    st.sampled_from([0, -1, 0.0, 1e-300, 1e300, math.nan, math.inf, -math.inf, None, True, False]),
    st.text(max_size=12),
    st.sampled_from(["", "kernel_level", "arch_level", "conv", "dwconv", "int8", "tiny_mbv3", "host-cpu@1",
                     "onnxruntime"]),
)
MUTATION = mutations(["set", "set", "scale", "delete", "add", "truncate", "repeat"],
                     nested(SCALARS, list_size=4, key_size=6), depth=5, key_size=8, factors=[-1, 0, 1e-9, 1e9, 1e300])


def _mutate(parent, key, op, value, extra, factor):
    old = parent[key]
    if op == "set":
        parent[key] = value
    elif op == "scale" and isinstance(old, (int, float)) and not isinstance(old, bool):
        parent[key] = old * factor if isinstance(old, float) else old * int(factor) if abs(factor) >= 1 else 0
    elif op == "delete":
        del parent[key]
    elif op == "add":
        if isinstance(old, dict):
            old[extra] = value
        elif isinstance(old, list):
            old.append(value)
        elif isinstance(parent, dict):
            parent[extra] = value
    elif op == "truncate" and isinstance(old, list):
        del old[len(old) // 2:]
    elif op == "repeat" and isinstance(old, list):
        old.extend(copy.deepcopy(old))


@st.composite
def mutated_models(draw, text: str) -> bytes:
    """The model file with 1-4 values set to random values, scaled, deleted or added, arrays cut or
    grown, and now and then some of its bytes overwritten."""
    doc = mutate(draw, json.loads(text), MUTATION, most=4, apply=_mutate)
    return now_and_then_overwrite_bytes(draw, json.dumps(doc).encode(), 16)


def test_any_mutated_model_file_predicts_finite_latencies_or_is_one_line(tmp_path, model_text):
    path = tmp_path / "latency_model.json"
    runs = []

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=mutated_models(model_text), named_space=st.booleans())
    def loads_or_refuses(data: bytes, named_space: bool) -> None:
        runs.append(1)
        path.write_bytes(data)
        try:  # the space given (as every caller in nas does) or found by the file's name
            model = LatencyModel.load(path, space=None if named_space else SPACE)
        except LatencyModelError as err:
            why = check_one_line(str(err))
            assert why is None and str(path) in str(err), f"{why}: {str(err)[:300]!r}"
            return
        for predictor in ("kernel_level", "arch_level"):
            try:
                metrics = model.predict(ARCHS, predictor=predictor)
            except NASError as err:  # e.g. a layer workload the table lacks: one line, as ever
                assert check_one_line(str(err)) is None, str(err)[:300]
                continue
            for metric in metrics:
                assert metric.source == "predicted" and metric.profile == model.profile_ref
                assert math.isfinite(metric.value) and metric.value >= 0, metric
                assert metric.spread is None or (math.isfinite(metric.spread) and metric.spread >= 0), metric

    tally_examples("latency_model_json", runs, loads_or_refuses)

"""A saved latency model records the feature layout its arch-level model was fitted on. A file from
before layouts were recorded (the five CNN op kinds, before transformer rows) is widened losslessly
and predicts as it did; a file of any other layout or width is refused with one line, never read
column for column into the wrong features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hw_profiles import MeasuredCostModel, Metric
from hw_profiles.measured import PairedMetric
from nas.profiling.device import ProfileSettings, profile_device
from nas.profiling.latency_model import LatencyModel, LatencyModelError, _check_features
from predictors.features import AGGREGATES, EXTRAS, FEATURE_LAYOUT, arch_features, layer_aggregates
from predictors.latency import ArchLevelPredictor
from search_spaces import OPS, LayerSpec, get_space

SPACE = get_space("tiny_mbv3")
OLD_WIDTH = 5 * len(AGGREGATES) + 4  # conv, pwconv, dwconv, gap, linear; SE count and MACs, adds, h-swish


def _stand_in(self, items, reference):
    """``MeasuredCostModel.measure_paired`` without timing: ms from each module's parameter count."""
    def ms(module):
        return 0.01 + 1e-5 * sum(p.numel() for p in module.parameters())

    ref = ms(reference[0])
    return [PairedMetric(item=Metric(value=ms(module), unit="ms", source="measured", profile=self.profile.ref,
                                     spread=0.001), reference_ms=ref, ratio=ms(module) / ref, ratio_iqr=0.001 / ref)
            for module, _ in items]


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("latency_model") / "host"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MeasuredCostModel, "measure_paired", _stand_in)
        profile_device(SPACE, "host-cpu", out, progress=False,
                       settings=ProfileSettings(samples=12, coverage=0, repeats=1, warmup=0, seed=3))
    return json.loads((out / "latency_model.json").read_text(encoding="utf-8"))


def _refused(data: dict) -> str:
    with pytest.raises(LatencyModelError) as info:
        LatencyModel.from_dict(data, source="old.json")
    message = str(info.value)
    assert "\n" not in message and message.startswith("old.json: ") and "rebuild it with `nas profile`" in message
    return message


def test_the_file_records_its_feature_layout_and_loads(document):
    assert document["features"] == FEATURE_LAYOUT
    model = LatencyModel.from_dict(document)
    (metric,) = model.predict([SPACE.smallest()], predictor="arch_level")
    assert metric.source == "predicted" and np.isfinite(metric.value)


def _old_columns(space) -> list[int]:
    """The columns of this version's features that a file written before layouts were recorded had: the
    one-hot columns, the five CNN op kinds (the first 25 aggregates) and SE count, SE MACs, residual
    adds, h-swish rows (the first 4 extras); transformer op kinds and the GELU counts came after."""
    hot = int(sum(space.cardinalities))
    extras = hot + len(OPS) * len(AGGREGATES)
    assert OPS[:5] == ("conv", "pwconv", "dwconv", "gap", "linear") and EXTRAS[:4] == (
        "se_count", "se_macs", "residual_adds", "hswish_rows")
    return [*range(hot + 5 * len(AGGREGATES)), *range(extras, extras + 4)]


def _old_file(document: dict, tmp_path) -> tuple[Path, ArchLevelPredictor]:
    """A latency model file as the version before transformer rows wrote it: no ``features`` record,
    no kernel-level floor, and an arch-level model fitted on the old 5-op layout."""
    archs = [SPACE.sample(np.random.default_rng(seed)) for seed in range(40)]
    X = arch_features(SPACE, archs)
    new = np.delete(X, _old_columns(SPACE), axis=1)
    assert new.shape[1] == 25 + 2 and not new.any()  # the columns a CNN never fills
    X_old = X[:, _old_columns(SPACE)]
    y = 0.05 + 1e-8 * X[:, int(sum(SPACE.cardinalities)) + 1 * len(AGGREGATES) + 1] + 0.01 * X[:, 3]
    old_model = ArchLevelPredictor().fit(X_old, y)
    old = json.loads(json.dumps(document))
    del old["features"], old["kernel_level"]["overhead_floor_ms"]
    old["arch_level"] = old_model.to_dict()
    assert len(old["arch_level"]["coef"]) == int(sum(SPACE.cardinalities)) + OLD_WIDTH
    path = tmp_path / "latency_model.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    return path, old_model


def test_an_old_five_op_cnn_file_loads_and_predicts_as_before(document, tmp_path):
    path, old_model = _old_file(document, tmp_path)
    model = LatencyModel.load(tmp_path)  # the folder, as `nas run` resumes and `nas worker` read it
    archs = [SPACE.sample(np.random.default_rng(100 + seed)) for seed in range(25)] + [SPACE.smallest(),
                                                                                        SPACE.largest()]
    got = np.array([m.value for m in model.predict(archs, predictor="arch_level")])
    before = np.maximum(old_model.predict(arch_features(SPACE, archs)[:, _old_columns(SPACE)]), 0.0)
    np.testing.assert_allclose(got, before, rtol=1e-12, atol=0)
    assert model.arch_level.coef_.size == len(document["arch_level"]["coef"])
    # re-saved, the file records this version's layout and loads the same
    again = LatencyModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert np.array_equal([m.value for m in again.predict(archs, predictor="arch_level")], got)
    assert json.loads(path.read_text())["arch_level"]["coef"] == old_model.to_dict()["coef"]  # input unchanged


def test_a_file_of_another_width_is_still_refused_with_one_line(document, tmp_path):
    hot = int(sum(SPACE.cardinalities))
    full = len(document["arch_level"]["mean"])
    for width in (hot + OLD_WIDTH + 1, hot + OLD_WIDTH - 1, full - 2):  # full - 2: 10 op kinds, 4 extras
        old = json.loads(json.dumps(document))
        del old["features"]
        for key in ("mean", "scale", "coef"):
            old["arch_level"][key] = old["arch_level"][key][:width]
        message = _refused(old)
        assert f"arch_level.mean must have {full} items" in message
        assert f"got {width}" in message and "before feature layouts were recorded" in message
    # the old width with this version's layout recorded is not an old file
    path, _ = _old_file(document, tmp_path)
    recorded = {**json.loads(path.read_text()), "features": FEATURE_LAYOUT}
    assert f"got {hot + OLD_WIDTH};" in _refused(recorded)


def test_the_old_width_of_a_transformer_space_is_refused():
    """No ViT file predates feature layouts: a ViT file of the old width is not widened."""
    vit = get_space("tiny_vit")
    width = int(sum(vit.cardinalities)) + OLD_WIDTH
    arch_level = {key: [1.0] * width for key in ("mean", "scale", "coef")}
    with pytest.raises(LatencyModelError, match=rf"^vit.json: arch_level.mean must have "
                                                rf"{width - OLD_WIDTH + layer_aggregates([]).size} items"):
        _check_features({"arch_level": arch_level}, vit, "vit.json")


def test_another_layout_of_the_same_width_is_refused(document):
    other = {**document, "features": FEATURE_LAYOUT.replace("gelu_rows", "swish_rows")}
    assert len(other["arch_level"]["mean"]) == len(document["arch_level"]["mean"])
    assert "features='ops=" in _refused(other)


OLD_ROW = {"op": "pwconv", "in_channels": 8, "out_channels": 8, "kernel": 1, "stride": 1, "groups": 1,
           "in_hw": [14, 14], "act": "none", "se_channels": 0, "residual": True, "bias": False, "bn": True,
           "block": "", "precision": None, "out_hw": [14, 14], "se": False, "latency_ms": 0.0108}
"""A kernel-level row copied from a tiny_mbv3 ``latency_model.json`` written before transformer ops."""


def test_the_kernel_level_rows_of_an_old_file_still_parse(document):
    old = json.loads(json.dumps(document))
    del old["features"], old["kernel_level"]["overhead_floor_ms"]
    old["kernel_level"]["layers"] = [OLD_ROW]
    model = LatencyModel.from_dict(old, source="old.json")
    row = LayerSpec("pwconv", 8, 8, 1, 1, 1, (14, 14), act="none", se_channels=0, residual=True, bias=False,
                    bn=True, block="", precision=None)
    assert model.kernel_level.layer_latency_ms == {row: 0.0108}
    assert model.kernel_level.overhead_floor_ms == 0.0


def test_layout_names_every_column():
    assert layer_aggregates([]).size == len(OPS) * len(AGGREGATES) + len(EXTRAS)
    assert FEATURE_LAYOUT.count(",") + 3 == len(OPS) + len(AGGREGATES) + len(EXTRAS)
    vit = get_space("tiny_vit")
    rows = vit.layers(vit.largest())
    agg = layer_aggregates(rows).reshape(-1)
    per_op = agg[: len(OPS) * len(AGGREGATES)].reshape(len(OPS), len(AGGREGATES))
    assert per_op[OPS.index("matmul"), 1] == sum(r.op_macs for r in rows if r.op == "matmul") > 0
    depth = vit.largest()["depth"]
    assert per_op[OPS.index("softmax"), 0] == depth and per_op[OPS.index("layernorm"), 0] == 2 * depth + 1
    assert per_op[OPS.index("tokens"), 4] == 50 * 64 + 64  # params: position embedding and cls token
    assert agg[-2] == depth and agg[-1] == sum(r.out_elements for r in rows if r.act == "gelu")

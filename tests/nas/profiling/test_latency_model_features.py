"""A saved latency model records the feature layout its arch-level model was fitted on: a file from a
version with another layout (the five CNN op kinds, before transformer rows) is refused with one line,
never read column for column into the wrong features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw_profiles import MeasuredCostModel, Metric
from hw_profiles.measured import PairedMetric
from nas.profiling.device import ProfileSettings, profile_device
from nas.profiling.latency_model import LatencyModel, LatencyModelError
from predictors.features import AGGREGATES, EXTRAS, FEATURE_LAYOUT, layer_aggregates
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


def test_an_old_five_op_file_is_refused_with_one_line(document):
    old = json.loads(json.dumps(document))
    del old["features"]
    width = int(sum(SPACE.cardinalities)) + OLD_WIDTH
    for key in ("mean", "scale", "coef"):
        old["arch_level"][key] = old["arch_level"][key][:width]
    message = _refused(old)
    assert f"arch_level.mean must have {len(document['arch_level']['mean'])} items" in message
    assert f"got {width}" in message and "before feature layouts were recorded" in message


def test_another_layout_of_the_same_width_is_refused(document):
    other = {**document, "features": FEATURE_LAYOUT.replace("gelu_rows", "swish_rows")}
    assert len(other["arch_level"]["mean"]) == len(document["arch_level"]["mean"])
    assert "features='ops=" in _refused(other)


def test_the_kernel_level_rows_of_an_old_file_still_parse(document):
    """The LayerSpec field set did not change: a row written before transformer ops reads back."""
    row = document["kernel_level"]["layers"][0]
    fields = {k: v for k, v in row.items() if k not in ("latency_ms", "out_hw", "se")}
    assert set(fields) == set(LayerSpec.__dataclass_fields__)


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

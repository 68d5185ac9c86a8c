"""`nas export` with a latency model whose prediction carries an interval: report.json keeps the
interval and its coverage beside the measurement, and the printed summary shows ``value [lo, hi]``."""

from __future__ import annotations

import json

import numpy as np

from hw_profiles.metric import Metric
from nas.export.from_job import render_summary
from nas.export.subnet import export_subnet
from search_spaces import get_space
from supernets import create_supernet
from supernets.testing import enliven


class _Predictor:
    backend, threads = "onnxruntime", 2

    def predict(self, archs):
        return [Metric(value=1.5, unit="ms", source="predicted", profile="host-cpu@1", spread=0.2,
                       interval=(1.25, 1.875), coverage=0.9) for _ in archs]


def test_the_prediction_in_report_json_and_the_summary_carries_its_interval(tmp_path, monkeypatch):
    from nas.profiling.latency_model import LatencyModel

    monkeypatch.setattr(LatencyModel, "load", classmethod(lambda cls, path, space=None: _Predictor()))
    arch = get_space("tiny_mbv3").sample(np.random.default_rng(0))
    supernet = create_supernet("tiny_mbv3", seed=0)
    enliven(supernet, arch, seed=1)
    report = export_subnet(supernet, arch, tmp_path / "p", formats="onnx", latency_model=tmp_path / "lm",
                           warmup=1, repeats=1)
    stored = json.loads((tmp_path / "p" / "report.json").read_text())["predicted_latency_ms"]
    assert stored["interval"] == [1.25, 1.875] and stored["coverage"] == 0.9 and stored["value"] == 1.5
    assert stored["backend"] == "onnxruntime"
    line = next(line for line in render_summary(report, tmp_path / "p").splitlines()
                if line.startswith("predicted latency"))
    assert line == "predicted latency (onnxruntime, host-cpu@1): 1.5 [1.25, 1.88] ms (90%)"

"""`nas run experiments/vit_quickstart.toml`, shrunk: train, profile, search, front and export on tiny_vit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.cli import main

VIT_QUICKSTART = Path(__file__).resolve().parents[3] / "experiments" / "vit_quickstart.toml"

SMALL = {
    "epochs = 30": "epochs = 2\nsteps_per_epoch = 4",
    "samples = 100": "samples = 12",
    "coverage = 100": "coverage = 10",
    "budget = 50": "budget = 10\nbatch_size = 5",
    "latency_budget_ms = 0.5": "latency_budget_ms = 100.0",
    "repeats = 20": "repeats = 3",
}


@pytest.mark.slow
@pytest.mark.tvm
def test_the_vit_quickstart_runs_end_to_end(tmp_path, capsys):
    text = VIT_QUICKSTART.read_text()
    for old, new in SMALL.items():
        assert old in text, old  # the shipped config still has the key this test shrinks
        text = text.replace(old, new, 1)
    config, out = tmp_path / "vit.toml", tmp_path / "out"
    config.write_text(text)
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 0
    console = capsys.readouterr().out
    assert "supernet val top-1: largest" in console  # no "(BN recalibrated)": a ViT has no BatchNorm
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"].values()] == ["done"] * 5
    report = json.loads((out / "export" / "report.json").read_text())
    assert report["bn_statistics"] == "none: the network has no BatchNorm"
    assert set(report["formats"]) == {"torch", "onnx", "tvm"}
    for entry in report["formats"].values():
        assert entry["latency_ms"]["source"] == "measured"
        parity = entry["parity"]
        assert parity["max_abs_diff"] <= 1e-4 * max(1.0, parity["output_max_abs"])
    front = (out / "front.csv").read_text().splitlines()
    assert len(front) >= 2 and "sram_kb" in front[0]

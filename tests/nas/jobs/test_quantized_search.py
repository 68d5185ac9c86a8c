"""A quantized search from a config (`nas search`): joint arch × policy with real PTQ accuracy, the
sequential baseline at equal budget, formats on every figure; quantized accuracy on its own."""

from __future__ import annotations

import json

import pytest

from nas.cli import main
from search_spaces import QuantPolicy, get_space

CONFIG = """
[search]
space = "tiny_mbv3+q"
algorithm = "{algorithm}"
budget = 6
seed = 0
job = "q"
storage = "{storage}"

[accuracy]
checkpoint = "{checkpoint}"

[quantization]
samples = 64
sequential_baseline = true

[[objectives]]
name = "acc"
metric = "accuracy"
direction = "maximize"

[[objectives]]
name = "flash_kb"
metric = "stm32f746.flash_kb"

[[constraints]]
metric = "stm32f746.peak_sram_kb"
op = "<="
bound = 320

[[constraints]]
metric = "predicted_accuracy_drop"
op = "<="
bound = 0.5
"""


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


@pytest.mark.slow
def test_quantized_evaluator_measures_int8_beside_float(checkpoint):
    from nas.training.evaluation import CheckpointEvaluator
    from nas.training.quantized import QuantizedEvaluator, QuantSettings

    space = get_space("tiny_mbv3+q")
    evaluator = QuantizedEvaluator(CheckpointEvaluator(checkpoint), space, QuantSettings(samples=32))
    net = space.base.smallest()
    int8 = evaluator(space.combine(net, QuantPolicy.uniform(space.labels, "int8")))
    fp32 = evaluator(space.combine(net, QuantPolicy.uniform(space.labels, "fp32")))
    assert int8.precision == "int8" and fp32.precision == "fp32"
    assert fp32.top1 == fp32.float_top1 == int8.float_top1 and fp32.max_logit_diff == 0.0
    assert 0.0 < int8.max_logit_diff and 0.5 <= int8.agreement <= 1.0 and int8.ptq_s > 0
    assert abs(int8.drop) < 0.2 and not int8.collapsed
    again = QuantizedEvaluator(CheckpointEvaluator(checkpoint), space, QuantSettings(samples=32))(
        space.combine(net, QuantPolicy.uniform(space.labels, "int8")))
    assert again.top1 == int8.top1 and again.agreement is None  # read back from quant_eval_cache.json
    assert (checkpoint / "quant_eval_cache.json").is_file()


@pytest.mark.slow
def test_joint_search_reports_the_sequential_baseline_and_formats(checkpoint, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    config = tmp_path / "q.toml"
    config.write_text(CONFIG.format(algorithm="random", storage=storage, checkpoint=checkpoint))
    assert main(["search", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "quantization: joint search (arch x policy) hypervolume" in out and "float job q.float" in out
    assert main(["pareto", "q", "--storage", storage, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["front"]
    assert rows and all(row["acc.precision"] in ("int8", "fp32", "mixed") for row in rows)
    assert all(row["flash_kb.precision"] == row["acc.precision"] for row in rows)
    assert all(row["predicted_accuracy_drop <= 0.5"] <= 0 for row in rows)
    assert main(["pareto", "q.float", "--storage", storage, "--format", "json"]) == 0
    assert all(row["acc.precision"] == "fp32" for row in json.loads(capsys.readouterr().out)["front"])


def test_bad_quantization_settings_are_one_line_errors(tmp_path, capsys):
    config = tmp_path / "q.toml"
    for edit, message in ((('samples = 64', 'samples = 0'), "[quantization]: samples must be"),
                          (('metric = "stm32f746.flash_kb"', 'metric = "host-cpu.tvm_latency_ms"'),
                           "TVM's int8 (QDQ) builds have no space tuning database"),
                          (('space = "tiny_mbv3+q"', 'space = "tiny_mbv3+q(fp32)"'), "offers no int8"),
                          (('samples = 64', 'method = "median"'), "calibration method 'median'"),
                          (('space = "tiny_mbv3+q"', 'space = "tiny_mbv3+q(int3)"'), "int3")):
        text = CONFIG.format(algorithm="random", storage=f"sqlite:///{tmp_path / 'x.db'}", checkpoint=tmp_path)
        config.write_text(text.replace(*edit))
        assert main(["search", str(config), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x.db").exists()


@pytest.mark.slow
def test_a_quantized_search_from_the_python_api(checkpoint, tmp_path):
    import nas

    space = nas.quantized(nas.get_space("tiny_mbv3"))
    accuracy = nas.AccuracyMetrics.open(checkpoint, space, quantization=nas.QuantSettings(samples=32))
    objectives = [nas.Objective("acc", accuracy.fn("accuracy"), direction="maximize"),
                  nas.Objective("flash_kb", "stm32f746.flash_kb")]
    result = nas.search(space, objectives, budget=4, seed=3, storage=f"sqlite:///{tmp_path / 'api.db'}",
                        algorithm="random", progress=False)
    records = result.records()
    assert len(records) == 4
    for record in records:
        arch = space.parse(dict(record.arch))
        label = space.policy(arch).label
        assert record.metrics["acc"].precision == label == record.metrics["flash_kb"].precision
        assert record.metrics["acc"].source == "measured"

"""Device profiles (TOML schema, loader, registry) and the GPU roofline model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from hw_profiles import (Metric, MeasurementRequiredError, ProfileError, UnknownProfileError, cost_model_for,
                         get_profile, list_profiles)
from hw_profiles.gpu import GpuRooflineModel, layer_bytes, layer_kernels
from hw_profiles.profile import load_profile_file, parse_profile
from nas.cli import main
from search_spaces import LayerSpec, get_space

DEMO_ARCH = "@" + str(Path(__file__).resolve().parents[2] / "experiments" / "archs" / "ofa_mbv3_demo.json")

GPU_TOML = """
name = "g"
version = "2"
kind = "gpu"
description = "test card"
[gpu]
peak_flops = { fp16 = 100e12, fp32 = 10e12 }
memory_bandwidth_bytes_per_s = 1e12
launch_overhead_s = 1e-6
compute_efficiency = 0.5
memory_efficiency = 0.5
"""


def write(tmp_path, text, name="g.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_profile_loads_with_name_version_and_sources():
    names = list_profiles()
    assert {"host-cpu", "a100", "h100", "rtx-4090"} <= set(names)
    for name in names:
        profile = get_profile(name)
        assert profile.name == name and profile.ref == f"{name}@{profile.version}"
        if profile.kind != "cpu":
            assert profile.sources, f"{name} must say where its coefficients come from"


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(UnknownProfileError) as info:
        get_profile("tpu-v9")
    assert "a100" in str(info.value) and "host-cpu" in str(info.value)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda t: t.replace('memory_bandwidth_bytes_per_s = 1e12', 'memory_bandwidth_bytes_per_s = "fast"'),
         "gpu.memory_bandwidth_bytes_per_s must be a number, got 'fast'"),
        (lambda t: t.replace('launch_overhead_s = 1e-6\n', ''), "missing key gpu.launch_overhead_s (a number)"),
        (lambda t: t.replace('kind = "gpu"', 'kind = "npu"'), "kind='npu' is not one of"),
        (lambda t: t.replace('version = "2"\n', ''), "missing key 'version'"),
        (lambda t: t + "bogus = 1\n", "unknown key(s) ['bogus'] in [gpu]"),
        (lambda t: t.replace('fp32 = 10e12', 'fp32 = "x"'), "gpu.peak_flops.fp32 must be a number"),
        (lambda t: t.replace('[gpu]', '[gpux]'), "missing table [gpu]"),
    ],
)
def test_schema_errors_name_the_key_and_expected_type(tmp_path, edit, fragment):
    with pytest.raises(ProfileError) as info:
        load_profile_file(write(tmp_path, edit(GPU_TOML)))
    message = str(info.value)
    assert fragment in message and "\n" not in message and message.startswith("g.toml")


def test_unreadable_and_invalid_toml(tmp_path):
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile_file(tmp_path / "missing.toml")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile_file(write(tmp_path, "name = "))


def test_gpu_roofline_by_hand(tmp_path):
    profile = load_profile_file(write(tmp_path, GPU_TOML))
    model = GpuRooflineModel(profile)  # fp16 by default: 50 TFLOP/s and 0.5 TB/s effective
    pw = LayerSpec("pwconv", 64, 128, 1, 1, 1, (56, 56), bn=True)
    flops = 2 * 64 * 128 * 56 * 56
    nbytes = (64 * 56 * 56 + 128 * 56 * 56 + 64 * 128) * 2
    assert layer_bytes(pw, 2) == nbytes and layer_kernels(pw) == 1
    expected = max(flops / 50e12, nbytes / 0.5e12) + 1e-6
    assert model.layer_latency_s(pw) == pytest.approx(expected)
    se_res = dataclasses.replace(pw, in_channels=128, se_channels=32, residual=True)
    assert layer_kernels(se_res) == 6
    (metric,) = model.metrics([pw]).values()
    assert metric == Metric(pytest.approx(expected * 1e3), "ms", "estimated", f"g@2+file:{profile.content_hash}")
    fp32 = GpuRooflineModel(profile, precision="fp32")
    assert fp32.layer_latency_s(pw) > model.layer_latency_s(pw)
    with pytest.raises(ValueError, match="int8"):
        GpuRooflineModel(profile, precision="int8")


def test_gpu_estimates_grow_with_the_subnet():
    space = get_space("ofa_mbv3")
    model = cost_model_for(get_profile("a100"))
    small = model.metrics(space.layers(space.smallest()))["latency_ms"].value
    large = model.metrics(space.layers(space.largest()))["latency_ms"].value
    assert 0 < small < large


def test_cpu_profiles_need_measurement():
    with pytest.raises(MeasurementRequiredError, match="measured on the device.*MeasuredCostModel"):
        cost_model_for(get_profile("host-cpu"))


def test_metric_provenance_rules():
    with pytest.raises(ValueError, match="source"):
        Metric(1.0, "ms", "guessed", "a100@1")
    with pytest.raises(ValueError, match="spread"):
        Metric(1.0, "ms", "measured", "host-cpu@1")


def test_cli_devices_and_describe_with_devices(capsys):
    assert main(["devices"]) == 0
    assert "a100" in capsys.readouterr().out
    assert main(["describe", "ofa_mbv3", "--arch", DEMO_ARCH,
                 "--device", "a100", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    latency = info["devices"]["a100"]["latency_ms"]
    assert latency["source"] == "estimated" and latency["profile"] == "a100@1" and latency["value"] > 0
    assert main(["describe", "ofa_mbv3", "--arch", DEMO_ARCH, "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown device profile 'tpu'" in err and err.count("\n") == 1

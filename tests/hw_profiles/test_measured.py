"""MeasuredCostModel: measured CPU latency with provenance, and `nas describe --device host-cpu`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hw_profiles import MeasuredCostModel, MeasurementFailedError, MeasurementRequiredError, get_profile
from nas.cli import main
from search_spaces import get_space
from supernets import create_supernet


@pytest.fixture(scope="module")
def tiny():
    space = get_space("tiny_mbv3")
    return space, create_supernet("tiny_mbv3", seed=0)


def model_for(space, supernet, profile=None, **kwargs):
    return MeasuredCostModel(profile or get_profile("host-cpu"), build=supernet.extract,
                             input_shape=lambda a: (1, *space.input_shape(a)), warmup=1, repeats=5, **kwargs)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_measure_returns_a_measured_metric(tiny, backend):
    space, supernet = tiny
    profile = get_profile("host-cpu")
    profile = dataclasses.replace(profile, spec=dataclasses.replace(profile.spec, backend=backend, threads=1))
    m = model_for(space, supernet, profile).measure(space.smallest())["latency_ms"]
    assert m.source == "measured" and m.unit == "ms" and m.profile == "host-cpu@1"
    assert m.value > 0 and m.spread is not None and m.spread >= 0


def test_threads_zero_means_every_core(tiny):
    import os

    model = model_for(*tiny)
    assert get_profile("host-cpu").spec.threads == 0 and model.threads == os.cpu_count()


def test_layer_table_cannot_be_measured(tiny):
    space, supernet = tiny
    with pytest.raises(MeasurementRequiredError, match=r"measure\(arch\)"):
        model_for(space, supernet).metrics(space.layers(space.smallest()))


def test_kernel_errors_become_nas_errors(tiny, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tvm", None)  # TVM not installed: the tvm runner raises KernelError
    space, supernet = tiny
    profile = get_profile("host-cpu")
    profile = dataclasses.replace(profile, spec=dataclasses.replace(profile.spec, backend="tvm"))
    with pytest.raises(MeasurementFailedError, match="host-cpu@1 \\(tvm\\).*TVM"):
        model_for(space, supernet, profile).measure(space.smallest())


def test_constructor_validates(tiny):
    space, supernet = tiny
    with pytest.raises(ValueError, match="repeats.*0"):
        MeasuredCostModel(get_profile("host-cpu"), build=supernet.extract, input_shape=space.input_shape, repeats=0)
    with pytest.raises(ValueError, match="build"):
        MeasuredCostModel(get_profile("host-cpu"), build=None, input_shape=space.input_shape)
    with pytest.raises(ValueError, match="cpu profile"):
        MeasuredCostModel(get_profile("a100"), build=supernet.extract, input_shape=space.input_shape)


def test_cli_describe_measures_host_cpu(capsys):
    arch = json.dumps(get_space("tiny_mbv3").smallest().to_dict())
    code = main(["describe", "tiny_mbv3", "--arch", arch, "--device", "host-cpu", "--json"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    m = json.loads(out)["devices"]["host-cpu"]["latency_ms"]
    assert m["source"] == "measured" and m["profile"] == "host-cpu@1"
    assert m["value"] > 0 and m["spread"] is not None and m["spread"] >= 0
    code = main(["describe", "tiny_mbv3", "--arch", arch, "--device", "host-cpu"])
    out, _ = capsys.readouterr()
    assert code == 0 and "(IQR)  [measured, host-cpu@1, fp32]" in out

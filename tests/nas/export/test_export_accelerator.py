"""`nas export` of a co-design arch (`<space>+hw(<device>)`): the network files as for the plain arch, and
accelerator.toml beside them, which `nas describe --device` accepts; bad input is one line and writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nas
from hw_profiles import get_profile
from hw_profiles.profile import PROFILE_DIR
from hw_profiles.template_table import TemplateModels
from nas.cli import main
from nas.export.subnet import ExportResult
from search_spaces import get_space

SPACE = "tiny_mbv3+hw(zcu104)"


def _left(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _export(out, space: str, arch_json: str, fmt: str = "onnx", *extra) -> int:
    return main(["export", "--space", space, "--arch", arch_json, "--format", fmt, "--out", str(out), "--quiet",
                 "--repeats", "1", *extra])


def _one_error_line(capsys, command: str = "export") -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured
    assert lines[0].startswith(f"nas {command}: error: ")
    return lines[0]


def test_export_writes_the_network_and_its_accelerator(tmp_path, capsys):
    space = get_space(SPACE)
    arch = space.combine(space.base.sample(np.random.default_rng(1)), {"pe_rows": 16, "pe_cols": 8,
                                                                       "dataflow": "output_stationary"})
    out = tmp_path / "co"
    assert _export(out, SPACE, arch.to_json()) == 0
    printed = capsys.readouterr().out
    hw_id = space.hw_id(arch)
    assert _left(out) == ["accelerator.toml", "arch.json", "model.onnx", "report.json"]
    assert _left(tmp_path) == ["co"]  # no staging folder left
    assert f"accelerator accelerator.toml: zcu104-{hw_id[:8]}@2 hw_id {hw_id}" in printed and ": feasible" in printed

    report = json.loads((out / "report.json").read_text())
    network = space.network(arch)
    assert (report["space"], report["arch_id"], report["network_arch_id"]) == (SPACE, arch.arch_id, network.arch_id)
    assert space.parse(report["arch"]) == arch
    acc = report["accelerator"]
    assert acc["file"] == "accelerator.toml" and acc["hw_id"] == hw_id and acc["feasible"] is True
    assert acc["label"].startswith("os 16x8 ") and acc["resources"]["dsp"] == 64
    assert ExportResult.from_json(report).to_json() == report  # what the pipeline reads back on a rerun
    info = json.loads((out / "arch.json").read_text())
    assert (info["space"], info["arch_id"]) == ("tiny_mbv3", network.arch_id)  # load_subnet reads the network
    assert info["accelerator"]["hw_id"] == hw_id and info["accelerator"]["arch_id"] == arch.arch_id

    # the network part is exported exactly as the plain arch is
    plain = tmp_path / "plain"
    assert _export(plain, "tiny_mbv3", network.to_json()) == 0
    capsys.readouterr()
    assert json.loads((plain / "report.json").read_text())["formats"]["onnx"]["sha256"] == \
        report["formats"]["onnx"]["sha256"]
    plain_info = json.loads((plain / "arch.json").read_text())
    assert {k: v for k, v in info.items() if k != "accelerator"} == plain_info

    # the written profile loads by path, costs the arch as the exact model does, and `nas describe` takes it
    profile = get_profile(str(out / "accelerator.toml"))
    assert profile.name == f"zcu104-{hw_id[:8]}" and profile.spec.pe_cols == 8
    assert main(["describe", "--device", str(out / "accelerator.toml"), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)["accelerators"][str(out / "accelerator.toml")]
    assert described["template"] == acc["template"] and described["resources"] == acc["resources"]
    assert main(["describe", "tiny_mbv3", "--arch", network.to_json(), "--device", str(out / "accelerator.toml"),
                 "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["devices"][str(out / "accelerator.toml")]
    exact = TemplateModels(space).metrics(arch)
    assert {k: m["value"] for k, m in metrics.items()} == {k: m.value for k, m in exact.items()}


def test_an_infeasible_accelerator_is_exported_and_says_how_far_over(tmp_path, capsys):
    space = get_space(SPACE)
    arch = space.combine(space.base.smallest(), {"pe_rows": 64, "pe_cols": 64})
    out = tmp_path / "big"
    assert _export(out, SPACE, arch.to_json(), "torch") == 0
    assert "INFEASIBLE, over by 320 DSP" in capsys.readouterr().out
    acc = json.loads((out / "report.json").read_text())["accelerator"]
    assert acc["feasible"] is False and acc["resources"]["dsp_over"] == 320
    module = nas.load_subnet(out)  # arch.json stays the network's
    assert not module.training
    assert main(["describe", "--device", str(out / "accelerator.toml")]) == 0
    assert "feasible  no: over by 320 DSP" in capsys.readouterr().out


def test_a_quantized_base_keeps_its_policy(tmp_path, capsys):
    space = get_space("tiny_mbv3+q+hw(zcu104)")
    arch = space.sample(np.random.default_rng(4))
    out = tmp_path / "q"
    assert _export(out, space.name, arch.to_json(), "torch") == 0
    capsys.readouterr()
    info = json.loads((out / "arch.json").read_text())
    qarch = space.network(arch)
    assert info["space"] == "tiny_mbv3+q" and info["arch_id"] == qarch.arch_id
    assert info["quantization"]["policy"] == space.base.policy(qarch).to_dict()
    report = json.loads((out / "report.json").read_text())
    assert report["arch_id"] == arch.arch_id and report["network_arch_id"] == space.base.network(qarch).arch_id
    assert report["accelerator"]["hw_id"] == space.hw_id(arch)


def test_export_of_a_co_design_trial(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/nas.db"
    space = get_space(SPACE)
    result = nas.search(space, [nas.Objective("macs", "macs"), nas.Objective("lat", "zcu104.latency_ms")],
                        budget=3, storage=storage, job="co", progress=False)
    out = tmp_path / "trial1"
    assert main(["export", "--job", "co", "--trial", "1", "--storage", storage, "--format", "torch",
                 "--out", str(out), "--quiet", "--repeats", "1"]) == 0
    capsys.readouterr()
    arch = result.arch(1)
    profile = get_profile(str(out / "accelerator.toml"))
    assert profile.name == f"zcu104-{space.hw_id(arch)[:8]}"
    assert profile.sources["pe_rows"].startswith("searched by hwnas co-design, job co trial 1")
    assert json.loads((out / "report.json").read_text())["arch_id"] == arch.arch_id


BAD_PROFILES = {  # a zcu104.toml with one edit: (old text, new text) pairs, each replaced once
    "pe_rows": [("pe_rows = 32", "pe_rows = 0")],
    "negative": [("pe_cols = 32", "pe_cols = -8")],
    "buffer": [("weight_buffer_bytes = 131072", "weight_buffer_bytes = 0")],
    "dataflow": [('dataflow = "weight_stationary"', 'dataflow = "row_stationary"')],
    "no-fit": [("pe_rows = [8, 16, 32, 64]", "pe_rows = [64, 128]"), ("pe_cols = [8, 16, 32, 64]", "pe_cols = [64]")],
}


def bad_profile(folder, case: str) -> str:
    """The path of a broken copy of zcu104.toml (``BAD_PROFILES[case]``)."""
    text = (PROFILE_DIR / "zcu104.toml").read_text(encoding="utf-8")
    for old, new in BAD_PROFILES[case]:
        assert old in text
        text = text.replace(old, new, 1)
    path = folder / "bad.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("case", ["option", "cpu-device", *BAD_PROFILES])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    space = get_space(SPACE)
    arch = space.largest().to_dict()
    name, expected = SPACE, {"option": "hw_pe_rows=12", "cpu-device": "cpu profile", "pe_rows": "pe_rows",
                             "negative": "pe_cols", "buffer": "weight_buffer_bytes", "dataflow": "row_stationary",
                             "no-fit": "no template fits"}[case]
    if case == "option":
        arch["hw_pe_rows"] = 12
    elif case == "cpu-device":
        name = "tiny_mbv3+hw(host-cpu)"
        arch = {k: v for k, v in arch.items() if not k.startswith("hw_")}
    else:
        name = f"tiny_mbv3+hw({bad_profile(tmp_path, case)})"
    out = tmp_path / "out"
    assert _export(out, name, json.dumps(arch)) == 2
    assert expected in _one_error_line(capsys)
    assert not out.exists() and [p for p in _left(tmp_path) if p != "bad.toml"] == []

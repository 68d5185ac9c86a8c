"""`nas describe` of accelerators: a device profile alone (its template and resources), a co-design arch
costed on its own template, and broken profiles as one line with exit code 2."""

from __future__ import annotations

import json

import pytest

from hw_profiles import cost_model_for, get_profile
from hw_profiles.profile import PROFILE_DIR
from hw_profiles.template_table import TemplateModels
from nas.cli import main
from search_spaces import get_space

SPACE = "tiny_mbv3+hw(zcu104)"


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _values(metrics: dict) -> dict:
    return {k: (m["value"], m["profile"]) for k, m in metrics.items()}


def test_a_device_alone_reports_its_accelerator(capsys):
    code, out, err = run(capsys, "describe", "--device", "zcu104", "--json")
    assert (code, err) == (0, "")
    info = json.loads(out)
    assert info["devices"]["zcu104"]["profile"] == "zcu104@2" and info["devices"]["zcu104"]["kind"] == "fpga"
    acc = info["accelerators"]["zcu104"]
    assert acc["template"] == {"dataflow": "weight_stationary", "pe_rows": 32, "pe_cols": 32, "bit_width": 8,
                               "clock_hz": 200e6, "input_buffer_bytes": 262144, "weight_buffer_bytes": 131072,
                               "output_buffer_bytes": 262144, "pes": 1024}
    assert acc["resources"] == {"dsp": 512, "dsp_total": 1728, "bram18k": 285, "bram18k_total": 624,
                                "feasible": True, "dsp_over": 0, "bram18k_over": 0}
    assert acc["template_of"] == "profile" and acc["source"] == "estimated" and acc["label"].startswith("ws 32x32")
    code, out, _ = run(capsys, "describe", "--device", "zcu104", "--device", "stm32f746")
    assert code == 0
    for fragment in ("device      zcu104 (zcu104@2, fpga)", "PE array  32x32 (1,024 PEs), int8 at 200 MHz",
                     "buffers   input 256 KiB, weight 128 KiB, output 256 KiB", "DSP       512 of 1,728 (29.6%)",
                     "BRAM18K   285 of 624 (45.7%)", "feasible  yes", "device      stm32f746 (stm32f746@1, mcu)"):
        assert fragment in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("accelerator ")] == ["zcu104"]


def test_a_joint_arch_is_costed_on_its_own_template(capsys):
    space = get_space(SPACE)
    arch = space.combine(space.base.largest(), {"pe_rows": 64, "pe_cols": 64})
    code, out, err = run(capsys, "describe", "--space", SPACE, "--arch", arch.to_json(), "--device", "zcu104",
                         "--device", "stm32f746", "--json")
    assert (code, err) == (0, "")
    info = json.loads(out)
    hw_id = space.hw_id(arch)
    assert info["accelerator"] == {"device": "zcu104", "hw_id": hw_id, "template": space.template(arch)}
    assert info["network_arch_id"] == space.network(arch).arch_id
    exact = TemplateModels(space).metrics(arch)
    assert _values(info["devices"]["zcu104"]) == {k: (m.value, m.profile) for k, m in exact.items()}
    assert "pe_rows=64" in info["devices"]["zcu104"]["latency_ms"]["profile"]
    mcu = cost_model_for(get_profile("stm32f746")).metrics(space.base.layers(space.network(arch)))
    assert _values(info["devices"]["stm32f746"]) == {k: (m.value, m.profile) for k, m in mcu.items()}
    acc = info["accelerators"]["zcu104"]
    assert acc["template_of"] == "arch" and acc["hw_id"] == hw_id and acc["template"]["pes"] == 4096
    assert acc["feasible"] is False and acc["resources"]["dsp_over"] == 320 and acc["resources"]["bram18k_over"] == 0
    assert "stm32f746" not in info["accelerators"]

    code, out, _ = run(capsys, "describe", SPACE, "--arch", arch.to_json(), "--device", "zcu104")
    assert code == 0
    for fragment in (f"template    ws 64x64 256/128/256KiB on zcu104 (hw_id {hw_id}", "the arch's own template",
                     "DSP       2,048 of 1,728 (118.5%)", "feasible  no: over by 320 DSP"):
        assert fragment in out


def test_another_fpga_profile_costs_the_network_on_its_own_template(tmp_path, capsys):
    text = (PROFILE_DIR / "zcu104.toml").read_text(encoding="utf-8")
    other = tmp_path / "other.toml"
    other.write_text(text.replace('name = "zcu104"', 'name = "other"').replace("pe_rows = 32", "pe_rows = 16", 1),
                     encoding="utf-8")
    space = get_space(SPACE)
    arch = space.combine(space.base.smallest(), {"pe_rows": 64})
    code, out, _ = run(capsys, "describe", SPACE, "--arch", arch.to_json(), "--device", str(other), "--json")
    assert code == 0
    info = json.loads(out)
    model = cost_model_for(get_profile(str(other)))
    assert _values(info["devices"][str(other)]) == \
        {k: (m.value, m.profile) for k, m in model.metrics(space.layers(arch)).items()}
    acc = info["accelerators"][str(other)]
    assert acc["template_of"] == "profile" and acc["template"]["pe_rows"] == 16 and "hw_id" not in acc


def test_a_plain_arch_has_no_accelerator_keys(capsys):
    code, out, _ = run(capsys, "describe", "tiny_mbv3", "--arch", get_space("tiny_mbv3").largest().to_json(),
                       "--json")
    info = json.loads(out)
    assert code == 0 and "accelerator" not in info and info["accelerators"] == {}


BAD = {  # a zcu104.toml with one edit
    "zero pe_rows": ("pe_rows = 32", "pe_rows = 0", "fpga.pe_rows must be a positive integer, got 0"),
    "negative pe_cols": ("pe_cols = 32", "pe_cols = -8", "fpga.pe_cols must be a positive integer, got -8"),
    "zero buffer": ("output_buffer_bytes = 262144", "output_buffer_bytes = 0", "fpga.output_buffer_bytes"),
    "unknown dataflow": ('dataflow = "weight_stationary"', 'dataflow = "row_stationary"', "'row_stationary'"),
    "search fits nothing": ("bram18k_total = 624", "bram18k_total = 10", "no template fits the device"),
    "not TOML": ('kind = "fpga"', 'kind = "fpga', "is not valid TOML"),
}


@pytest.mark.parametrize(("old", "new", "expected"), BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("with_arch", [False, True])
def test_a_broken_profile_is_one_line_and_exit_2(tmp_path, capsys, old, new, expected, with_arch):
    text = (PROFILE_DIR / "zcu104.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    arch = ["tiny_mbv3", "--arch", get_space("tiny_mbv3").smallest().to_json()] if with_arch else []
    code, out, err = run(capsys, "describe", *arch, "--device", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("nas describe: error: ") and expected in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # nothing written


@pytest.mark.parametrize("argv", [["describe"], ["describe", "tiny_mbv3"], ["describe", "--arch", "{}"]])
def test_describe_needs_a_space_and_arch_or_a_device(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and "error:" in capsys.readouterr().err


def test_two_different_spaces_are_refused(capsys):
    arch = get_space("tiny_mbv3").smallest().to_json()
    code, _, err = run(capsys, "describe", "tiny_mbv3", "--space", "ofa_mbv3", "--arch", arch)
    assert code == 2 and "two spaces given" in err and err.count("\n") == 1
    code, _, _ = run(capsys, "describe", "tiny_mbv3", "--space", "tiny_mbv3", "--arch", arch)
    assert code == 0

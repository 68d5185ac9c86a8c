"""Hostile device profiles (issue 18, part 4): a profile TOML is untrusted input with one schema.

* Every numeric key of every spec kind has a physical range declared on its field
  (``hw_profiles.profile``); a value outside it, of the wrong type, or a broken file is one
  ``ProfileError`` line naming the file, the key and the valid range, never a crash or a nonsense
  estimate (a negative launch overhead once gave -67 s of "estimated" latency).
* A profile loaded from a path carries the file's hash in its ``ref`` (``a100@1+file:HASH``), so a
  copied or edited shipped profile never passes as the shipped one in a ``Metric``'s provenance.
* A Hypothesis property: any mutation of a shipped profile loads as a profile whose estimates are
  finite, or is refused with one line.

(Named ``test_profile_files.py``: ``tests/hw_profiles/test_profiles.py`` holds the basename
``test_profiles`` and pytest's default import mode refuses two test modules of one basename.)
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib

import pytest
import tomli_w
from _mutations import (ANY_FLOAT, INT64, PAST_INT64, mutations, nested, now_and_then_overwrite_bytes, tally_examples,
                        walk)
from conftest import check_one_line, refuse_load, tally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw_profiles import MeasurementRequiredError, ProfileError, cost_model_for, get_profile, list_profiles
from hw_profiles.gpu import BYTES_PER_ELEMENT
from hw_profiles.profile import PROFILE_DIR, Profile, load_profile_file
from nas.cli import main
from search_spaces import get_space

SHIPPED = {name: (PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8") for name in list_profiles()}
SPACE = get_space("tiny_mbv3")
LAYERS = SPACE.layers(SPACE.smallest())


def _edit(name: str, old: str, new: str) -> str:
    text = SHIPPED[name]
    assert old in text, f"{old!r} is not in {name}.toml"
    return text.replace(old, new, 1)


# name: (shipped profile, old text, new text, what the one line must say)
BAD = {
    "negative launch overhead": ("a100", "launch_overhead_s = 5e-6", "launch_overhead_s = -67",
                                 "gpu.launch_overhead_s must be a finite number >= 0 (s), got -67.0; "
                                 "valid range [0, 1]"),
    "zero bandwidth": ("a100", "memory_bandwidth_bytes_per_s = 1.555e12", "memory_bandwidth_bytes_per_s = 0",
                       "gpu.memory_bandwidth_bytes_per_s must be a finite number > 0"),
    "efficiency 1.5": ("h100", "compute_efficiency = 0.30", "compute_efficiency = 1.5",
                       "gpu.compute_efficiency must be at most 1 (fraction of peak), got 1.5; valid range [1e-06, 1]"),
    "efficiency nan": ("rtx-4090", "memory_efficiency = 0.75", "memory_efficiency = nan",
                       "gpu.memory_efficiency must be a finite number > 0 (fraction of peak), got nan"),
    "peak inf": ("a100", "fp16 = 312e12", "fp16 = inf", "gpu.peak_flops.fp16 must be a finite number"),
    "peak -inf": ("a100", "fp32 = 19.5e12", "fp32 = -inf", "gpu.peak_flops.fp32 must be a finite number > 0"),
    "unknown precision": ("a100", "int8 = 624e12", "fp64 = 1e12", "gpu.peak_flops has unknown precision(s) ['fp64']"),
    "default precision without a rate": ("a100", ", int8 = 624e12 }", " }\n",
                                         None),  # default_precision set to int8 below
    "tiny efficiency (inf latency)": ("a100", "compute_efficiency = 0.35", "compute_efficiency = 1e-300",
                                      "gpu.compute_efficiency must be a finite number >= 1e-06"),
    "cuda arch": ("a100", 'cuda_arch = "sm_80"', 'cuda_arch = "80"', "gpu.cuda_arch must be empty or a CUDA arch"),
    "negative mcu clock": ("stm32f746", "clock_hz = 216e6", "clock_hz = -216e6",
                           "mcu.clock_hz must be a finite number > 0 (Hz)"),
    "zero sram": ("stm32f746", "sram_bytes = 327680", "sram_bytes = 0",
                  "mcu.sram_bytes must be a positive integer (bytes), got 0"),
    "huge flash int": ("stm32h743", "flash_bytes = 2097152", "flash_bytes = 99999999999999999999999",
                       "mcu.flash_bytes must be at most 1099511627776 (bytes)"),
    "huge clock float": ("stm32h743", "clock_hz = 480e6", "clock_hz = 1e400", "mcu.clock_hz must be a finite number"),
    "huge int for a float": ("stm32h743", "clock_hz = 480e6", "clock_hz = 1" + "0" * 400,
                             "mcu.clock_hz must be a finite number, got 1000"),
    "negative runtime sram": ("stm32f746", "runtime_sram_bytes = 8192", "runtime_sram_bytes = -8192",
                              "mcu.runtime_sram_bytes must be an integer >= 0"),
    "mcu rate missing": ("stm32f746", ", linear = 0.45 }", " }", "mcu.macs_per_cycle needs a value per op kind"),
    "mcu rate nan": ("stm32f746", "pwconv = 0.7", "pwconv = nan",
                     "mcu.macs_per_cycle.pwconv must be a finite number > 0"),
    "negative overhead cycles": ("stm32h743", "per_layer_overhead_cycles = 1000", "per_layer_overhead_cycles = -1",
                                 "mcu.per_layer_overhead_cycles must be a finite number >= 0 (cycles)"),
    "empty core": ("stm32f746", 'core = "cortex-m7"', 'core = ""', "mcu.core must be a non-empty line of text"),
    "negative threads": ("host-cpu", "threads = 0 ", "threads = -4 ", "cpu.threads must be an integer >= 0"),
    "unknown backend": ("host-cpu", 'backend = "onnxruntime"', 'backend = "tensorrt"',
                        "cpu.backend must be one of ['onnxruntime', 'tvm', 'torch'], got 'tensorrt'"),
    "empty target": ("host-cpu", 'target = "llvm"', 'target = ""', "cpu.target must be a non-empty line"),
    "tracker without port": ("rpi4", 'rpc_tracker = "127.0.0.1:9190"', 'rpc_tracker = "127.0.0.1"',
                             "cpu.rpc_tracker must be HOST:PORT"),
    "fpga clock of 1e-300 Hz (inf latency)": ("zcu104", "clock_hz = 200e6", "clock_hz = 1e-300",
                                              "fpga.clock_hz must be a finite number >= 1000 (Hz), got 1e-300"),
    "fpga huge pe_rows": ("zcu104", "pe_rows = 32", "pe_rows = 9223372036854775807",
                          "fpga.pe_rows must be at most 4096"),
    "fpga macs per dsp": ("zcu104", "macs_per_dsp = 2", "macs_per_dsp = 1000", "fpga.macs_per_dsp must be at most 64"),
    "fpga power nan": ("zcu104", "static_power_w = 1.0", "static_power_w = nan",
                       "fpga.static_power_w must be a finite number >= 0 (W), got nan"),
    "fpga empty device": ("zcu104", 'device = "XCZU7EV-2FFVC1156"', 'device = ""', "fpga.device must be a non-empty"),
    "fpga huge search option": ("zcu104", "pe_cols = [8, 16, 32, 64]", "pe_cols = [8, 16, 32, 100000]",
                                "fpga.search.pe_cols[3] must be at most 4096"),
    "name with a path": ("a100", 'name = "a100"', 'name = "../../a100"', "name must be a name of letters"),
    "empty version": ("a100", 'version = "1"', 'version = ""', "version must be a version"),
    "version posing as a file": ("a100", 'version = "1"', 'version = "1+file:000000000000"', "version must be"),
}


@pytest.mark.parametrize(("name", "old", "new", "expected"), BAD.values(), ids=BAD.keys())
def test_a_physically_impossible_value_is_one_line_naming_file_key_and_range(tmp_path, name, old, new, expected):
    text = _edit(name, old, new)
    if expected is None:  # the default precision has no peak rate
        text = text.replace('default_precision = "fp16"', 'default_precision = "int8"')
        expected = "gpu.default_precision='int8' has no rate in peak_flops (which has ['fp16', 'fp32'])"
    path = tmp_path / "copy.toml"
    path.write_text(text, encoding="utf-8")
    message = refuse_load("profile_toml", lambda: load_profile_file(path), contains=expected)
    assert message.startswith("copy.toml: ")


# A regression guard for the malformed files the brief lists: these were refused before issue 18 too.
MALFORMED = {
    "empty file": (b"", "copy.toml: missing key 'name'"),
    "binary garbage": (bytes(range(256)) * 4, "is not valid TOML"),
    "wrong type": (_edit("a100", "launch_overhead_s = 5e-6", 'launch_overhead_s = "fast"').encode(),
                   "gpu.launch_overhead_s must be a number, got 'fast'"),
    "a table where a number goes": (_edit("zcu104", "clock_hz = 200e6", "clock_hz = { a = 1 }").encode(),
                                    "fpga.clock_hz must be a number"),
    "missing key": (_edit("stm32f746", "flash_bytes = 1048576", "").encode(), "missing key mcu.flash_bytes"),
    "unknown key": (_edit("host-cpu", "threads = 0 ", "thread = 0 ").encode(), "unknown key(s) ['thread']"),
}


@pytest.mark.parametrize(("data", "expected"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_file_is_one_line(tmp_path, data, expected):
    path = tmp_path / "copy.toml"
    path.write_bytes(data)
    refuse_load("profile_toml", lambda: load_profile_file(path), contains=expected)


def test_an_oversized_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.toml"
    path.write_bytes(SHIPPED["a100"].encode() + b"# " + b"x" * (2 << 20) + b"\n")
    refuse_load("profile_toml", lambda: load_profile_file(path), contains="larger than 1048576 bytes")


def test_a_path_with_a_nul_is_one_line(tmp_path):  # e.g. a "\u0000" escape in a config's device path
    refuse_load("profile_toml", lambda: get_profile(f"{tmp_path}/x\0.toml"), contains="cannot read profile")


def test_a_deeply_nested_file_is_one_line(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    refuse_load("profile_toml", lambda: load_profile_file(path), contains="not valid TOML")


def test_a_copied_shipped_profile_loaded_from_a_path_says_so_in_every_metric(tmp_path, capsys):
    shipped = get_profile("a100")
    assert shipped.ref == "a100@1" and shipped.path is None and shipped.content_hash is None and shipped.shipped
    path = tmp_path / "a100.toml"  # the same file name, other numbers
    path.write_text(_edit("a100", "memory_bandwidth_bytes_per_s = 1.555e12", "memory_bandwidth_bytes_per_s = 3e12"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    for profile in (get_profile(str(path)), load_profile_file(path)):
        assert profile.ref == f"a100@1+file:{digest}" and not profile.shipped
        assert profile.path == str(path.resolve()) and profile.content_hash == digest
        metric = cost_model_for(profile).metrics(LAYERS)["latency_ms"]
        assert metric.source == "estimated" and metric.profile == f"a100@1+file:{digest}"
    # an unchanged copy is still not the shipped profile: its ref names the file's hash
    same = tmp_path / "same.toml"
    same.write_bytes((PROFILE_DIR / "a100.toml").read_bytes())
    copied = get_profile(str(same))
    assert copied == shipped and copied.ref == "a100@1+file:" + hashlib.sha256(same.read_bytes()).hexdigest()[:12]
    # and so through the CLI: `nas describe --device FILE` reports the file's ref
    assert main(["describe", "tiny_mbv3", "--arch", SPACE.smallest().to_json(), "--device", str(path), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)["devices"][str(path)]["latency_ms"]
    assert described["profile"] == f"a100@1+file:{digest}" and described["source"] == "estimated"
    tally("loader", "profile_toml", broken=False)


def test_the_cli_refuses_a_bad_profile_with_one_line(hostile_cli, tmp_path):
    path = tmp_path / "a100-copy.toml"
    path.write_text(_edit("a100", "launch_overhead_s = 5e-6", "launch_overhead_s = -67"))  # once: -67 s "estimated"
    line = hostile_cli(["describe", "tiny_mbv3", "--arch", SPACE.smallest().to_json(), "--device", str(path)],
                       watch=[tmp_path], contains="gpu.launch_overhead_s must be a finite number >= 0")
    assert "a100-copy.toml" in line and "valid range [0, 1]" in line


def test_gpu_precisions_are_the_roofline_models():
    from hw_profiles.profile import GPU_PRECISIONS

    assert set(GPU_PRECISIONS) == set(BYTES_PER_ELEMENT)


# ------------------------------------------------------------------------------------------ property
SCALARS = st.one_of(
    INT64,
    PAST_INT64,
    ANY_FLOAT,
    st.sampled_from([0, -1, 0.0, -0.0, 1e-300, 1e300, math.nan, math.inf, -math.inf, 1.5, 2**53]),
    st.text(max_size=12),
    st.sampled_from(["", "fp16", "int8", "fp64", "conv", "linear", "tvm", "weight_stationary", "sm_90", "x:1"]),
    st.booleans(),
)
MUTATION = mutations(["set", "set", "scale", "delete", "add"], nested(SCALARS, list_size=4, key_size=6), depth=3,
                     key_size=8, factors=[-1, 0, 1e-9, 1e-3, 1e3, 1e9, 1e300])


@st.composite
def mutated_profiles(draw) -> bytes:
    """A shipped profile's TOML with 1-4 keys set to random values, scaled, deleted or added, and
    now and then some of its bytes overwritten."""
    doc = tomllib.loads(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))])
    for op, steps, value, extra, factor in draw(st.lists(MUTATION, min_size=1, max_size=4)):
        spec = doc.get(doc["kind"]) if isinstance(doc.get("kind"), str) else None
        in_spec = draw(st.sampled_from([True, True, True, False])) and isinstance(spec, dict)
        parent, key = walk(spec if in_spec else doc, steps, lists=False)  # mostly the spec table
        if key is None:
            continue
        if op == "set":
            parent[key] = value
        elif op == "scale" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            old = parent[key]
            if isinstance(old, float):
                parent[key] = old * factor  # inf past the float range
            else:  # exact for ints of any size
                parent[key] = old * int(factor) if abs(factor) >= 1 or factor == 0 else old // round(1 / factor)
        elif op == "delete":
            del parent[key]
        elif op == "add":
            (parent[key] if isinstance(parent[key], dict) else parent)[extra] = value
    return now_and_then_overwrite_bytes(draw, tomli_w.dumps(doc).encode(), 16)


def test_any_mutated_shipped_profile_loads_with_finite_estimates_or_is_one_line(tmp_path):
    path = tmp_path / "mutated.toml"
    runs = []

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=mutated_profiles())
    def loads_or_refuses(data: bytes) -> None:
        runs.append(1)
        path.write_bytes(data)
        try:
            profile = load_profile_file(path)
        except ProfileError as err:
            why = check_one_line(str(err))
            assert why is None and "mutated.toml" in str(err), f"{why}: {str(err)[:300]!r}"
            return
        assert isinstance(profile, Profile)
        assert profile.ref == f"{profile.name}@{profile.version}+file:{hashlib.sha256(data).hexdigest()[:12]}"
        try:
            model = cost_model_for(profile)
        except MeasurementRequiredError:  # a cpu profile: measured, nothing to estimate
            assert profile.kind == "cpu"
            return
        for key, metric in model.metrics(LAYERS).items():
            assert math.isfinite(metric.value) and metric.value >= 0, f"{key} = {metric.value} from {data[:2000]!r}"
            assert metric.profile == profile.ref

    tally_examples("profile_toml", runs, loads_or_refuses)

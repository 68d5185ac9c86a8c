"""Profiles written back as TOML (hw_profiles.profile_toml): round trips, and the accelerator profile of a
co-design arch, whose cost model agrees with the exact per-template model."""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib

import numpy as np
import pytest

import hw_profiles  # noqa: F401 - registers the template source of "+hw(...)" spaces
from hw_profiles.fpga import FpgaCostModel
from hw_profiles.profile import ProfileError, get_profile, list_profiles, load_profile_file
from hw_profiles.profile_toml import accelerator_profile, profile_to_toml, short_template
from hw_profiles.template_table import TemplateModels
from search_spaces import get_space

SPACE = "tiny_mbv3+hw(zcu104)"


def _write(tmp_path, profile, name="accelerator.toml"):
    path = tmp_path / name
    path.write_text(profile_to_toml(profile), encoding="utf-8")
    return path


def _search(profile):
    search = getattr(profile.spec, "search", None)
    return None if search is None else {k: tuple(v) for k, v in search.items()}


@pytest.mark.parametrize("name", list_profiles())
def test_every_shipped_profile_round_trips(tmp_path, name):
    profile = get_profile(name)
    path = _write(tmp_path, profile, f"{name}.toml")
    back = load_profile_file(path)
    # equal content; loaded from a path, it carries the file's hash and cannot pass as the shipped profile
    assert back == profile and profile.shipped and not back.shipped
    assert back.ref == f"{profile.ref}+file:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    assert dict(back.sources) == dict(profile.sources)
    assert _search(back) == _search(profile)  # [fpga.search] is not part of FpgaSpec equality: checked apart


def test_shipped_fpga_profiles_keep_their_search_table(tmp_path):
    fpga = [n for n in list_profiles() if get_profile(n).kind == "fpga"]
    assert fpga, "no shipped fpga profile"
    for name in fpga:
        blob = tomllib.loads(profile_to_toml(get_profile(name)))
        assert blob["fpga"]["search"]["pe_rows"] == list(get_profile(name).spec.search["pe_rows"])


def test_a_profile_that_breaks_the_schema_is_refused_not_written():
    zcu = get_profile("zcu104")
    for bad in ({"pe_rows": 0}, {"weight_buffer_bytes": 0}, {"dataflow": "row_stationary"}):
        with pytest.raises(ProfileError) as info:
            profile_to_toml(dataclasses.replace(zcu, spec=dataclasses.replace(zcu.spec, **bad)))
        assert "\n" not in str(info.value) and next(iter(bad)) in str(info.value)


def _check_accelerator(tmp_path, space, arch, job, trial):
    """The accelerator.toml of ``arch``: loads by path, equals its profile, costs as TemplateModels does."""
    device = get_profile(space.device)
    profile = accelerator_profile(space, arch, job=job, trial=trial)
    hw_id = space.hw_id(arch)
    assert profile.name == f"{device.name}-{hw_id[:8]}" and profile.version == device.version == "2" and profile.kind == "fpga"
    loaded = get_profile(str(_write(tmp_path, profile)))
    assert loaded == profile and _search(loaded) == _search(device)
    for knob, value in space.template(arch).items():
        assert getattr(loaded.spec, knob) == value
        assert loaded.sources[knob].startswith(f"searched by hwnas co-design, job {job} trial {trial}")
    assert {k: v for k, v in loaded.sources.items() if k not in space.knobs} == \
        {k: v for k, v in device.sources.items() if k not in space.knobs}
    for fragment in (f"job {job} trial {trial}", space.name, arch.arch_id, hw_id, "Analytic estimate"):
        assert fragment in loaded.description
    exact = TemplateModels(space).metrics(arch)
    got = FpgaCostModel(loaded).metrics(space.layers(arch))
    assert set(got) == set(exact)
    for name, metric in exact.items():
        assert (got[name].value, got[name].unit, got[name].source, got[name].precision) == \
            (metric.value, metric.unit, metric.source, metric.precision), name
    assert got["latency_ms"].profile == loaded.ref
    return loaded


def test_random_templates_write_load_and_cost_like_the_exact_model(tmp_path):
    space = get_space(SPACE)
    rng = np.random.default_rng(0)
    seen = set()
    for trial in range(12):
        arch = space.sample(rng)
        seen.add(space.hw_id(arch))
        _check_accelerator(tmp_path, space, arch, "co", trial)
    assert len(seen) > 6  # the samples cover many templates


def test_an_infeasible_template_is_written_as_a_result(tmp_path):
    space = get_space(SPACE)
    arch = space.combine(space.base.smallest(), {"pe_rows": 64, "pe_cols": 64, "dataflow": "output_stationary"})
    loaded = _check_accelerator(tmp_path, space, arch, "j", 7)
    resources = FpgaCostModel(loaded).resources()
    assert not resources.feasible and resources.dsp_over == 2048 - 1728 and resources.bram18k_over == 0


def test_a_quantized_base_costs_its_mixed_precision_rows_the_same(tmp_path):
    space = get_space("tiny_mbv3+q+hw(zcu104)")
    rng = np.random.default_rng(3)
    for trial in range(4):
        _check_accelerator(tmp_path, space, space.sample(rng), "q", trial)


def test_without_a_job_the_sources_name_the_arch(tmp_path):
    space = get_space(SPACE)
    arch = space.largest()
    profile = accelerator_profile(space, arch)
    assert profile.sources["pe_rows"].startswith(f"searched by hwnas co-design, arch {arch.arch_id} of space {SPACE}")
    assert "job" not in profile.description.split("hw_id")[0]


def test_accelerator_profile_needs_an_accelerator_space():
    with pytest.raises(ValueError, match="AcceleratorSpace"):
        accelerator_profile(get_space("tiny_mbv3"), get_space("tiny_mbv3").largest())


def test_short_template_labels():
    assert short_template({"dataflow": "weight_stationary", "pe_rows": 32, "pe_cols": 32,
                           "input_buffer_bytes": 262144, "weight_buffer_bytes": 131072,
                           "output_buffer_bytes": 262144}) == "ws 32x32 256/128/256KiB"
    assert short_template({"dataflow": "output_stationary", "pe_rows": 8, "pe_cols": 64, "clock_hz": 2.5e8,
                           "bit_width": 4}) == "os 8x64 250MHz int4"
    assert short_template({"pe_rows": 16}) == "16x?"

"""The contract every cost model keeps, through ``nas.testing.cost_models``: every shipped device
profile (``list_profiles()``), by kind, plus the analytic counts and non-default model settings.

Monotone (never smaller when one of width/expand, kernel, depth or resolution grows), per model:

- analytic: ``macs``, ``params``, ``peak_activation_bytes``;
- GPU roofline: ``latency_ms`` (a sum of per-layer max(compute, memory) + launch overheads);
- MCU: ``latency_ms``, ``flash_kb``, ``peak_sram_kb`` and the overshoots ``sram_over_kb``,
  ``flash_over_kb``; ``feasible`` never rises. Not ``patch_recompute_overhead``: a ratio of MACs;
- FPGA: ``latency_ms``, ``energy_mj`` and the template's ``dsp``/``bram18k`` (constant per template);
  ``feasible`` never rises.

Measured models time a network: slow (host CPU) or GPU-only (CUDA), and never over RPC here.
"""

from __future__ import annotations

import pytest

from hw_profiles import MeasurementRequiredError, Metric, cost_model_for, get_profile, list_profiles, macs, params
from hw_profiles.analytic import peak_activation_bytes
from hw_profiles.gpu import BYTES_PER_ELEMENT
from hw_profiles.mcu import McuCostModel
from hw_profiles.tvm_measured import measured_model_for
from nas.jobs.objectives import ANALYTIC
from nas.testing.cost_models import CostModelContract, MeasuredCostModelContract
from search_spaces import get_space, list_spaces

KINDS = {"gpu", "mcu", "fpga", "cpu"}
MCU_MONOTONE = ("latency_ms", "flash_kb", "peak_sram_kb", "sram_over_kb", "flash_over_kb")
SPACES = [pytest.param(n, marks=pytest.mark.slow) if n == "ofa_mbv3" else n for n in list_spaces()]


def profiles_of(kind: str) -> list[str]:
    return [n for n in list_profiles() if get_profile(n).kind == kind]


class OnEverySpace:
    """Mixed in before the contract: its tests run on every registered space (ofa_mbv3: slow)."""

    @pytest.fixture(params=SPACES)
    def space(self, request):
        return get_space(request.param)


class AnalyticModel:
    """The layer-table counts, tagged as the metric catalog tags them (``nas.jobs.objectives.ANALYTIC``)."""

    def metrics(self, layers):
        def metric(value, unit):
            return Metric(value=float(value), unit=unit, source="estimated", profile=ANALYTIC)

        return {"macs": metric(macs(layers), "MACs"), "params": metric(params(layers), "params"),
                "peak_activation_bytes": metric(peak_activation_bytes(layers, 1), "bytes")}


class TestAnalytic(OnEverySpace, CostModelContract):
    monotone_metrics = decomposable_metrics = ("macs", "params", "peak_activation_bytes")

    @pytest.fixture
    def cost_model(self):
        return AnalyticModel()

    @pytest.fixture
    def profile_ref(self):
        return ANALYTIC


class TestGpuRoofline(OnEverySpace, CostModelContract):
    monotone_metrics = decomposable_metrics = ("latency_ms",)

    @pytest.fixture(params=[(n, p) for n in profiles_of("gpu") for p in sorted(get_profile(n).spec.peak_flops)
                            if p in BYTES_PER_ELEMENT], ids="-".join)
    def cost_model(self, request):
        name, precision = request.param
        model = cost_model_for(get_profile(name))
        return model if precision == model.precision else type(model)(model.profile, precision=precision)


class TestMcu(OnEverySpace, CostModelContract):
    monotone_metrics = MCU_MONOTONE
    antitone_metrics = ("feasible",)
    decomposable_metrics = ("latency_ms", "flash_kb", "peak_sram_kb")

    @pytest.fixture(params=profiles_of("mcu"))
    def cost_model(self, request):
        return cost_model_for(get_profile(request.param))


class TestMcuPatchBased(OnEverySpace, CostModelContract):
    monotone_metrics = MCU_MONOTONE
    antitone_metrics = ("feasible",)
    decomposable_metrics = ("flash_kb",)  # patching couples the first stage's blocks

    @pytest.fixture(params=[(n, p) for n in profiles_of("mcu") for p in (2, 4)], ids=lambda p: f"{p[0]}-{p[1]}x{p[1]}")
    def cost_model(self, request):
        name, patches = request.param
        return McuCostModel(get_profile(name), patch_first_stage=True, patches=patches)


class TestFpga(OnEverySpace, CostModelContract):
    monotone_metrics = ("latency_ms", "energy_mj", "dsp", "bram18k")
    antitone_metrics = ("feasible",)
    decomposable_metrics = ("dsp", "bram18k")

    @pytest.fixture(params=[(n, t) for n in profiles_of("fpga") for t in ("profile", "small")], ids="-".join)
    def cost_model(self, request):
        name, template = request.param
        model = cost_model_for(get_profile(name))
        if template == "small":  # feature maps spill to DDR and inputs are re-fetched per weight chunk
            model = model.with_template(pe_rows=8, pe_cols=8, input_buffer_bytes=4096, output_buffer_bytes=4096,
                                        weight_buffer_bytes=4096)
        return model


class TestMeasured(MeasuredCostModelContract):
    @pytest.fixture(params=[pytest.param(n, marks=pytest.mark.slow) for n in profiles_of("cpu")]
                    + [pytest.param(n, marks=pytest.mark.gpu) for n in profiles_of("gpu")])
    def cost_model(self, request, space, supernet_cache):  # space: tiny_mbv3, the contract's default
        supernet = supernet_cache(space.name)
        try:
            model = measured_model_for(get_profile(request.param), build=supernet.extract,
                                       input_shape=supernet.input_shape, warmup=1, repeats=3)
        except MeasurementRequiredError as err:  # another GPU than this one
            pytest.skip(str(err))
        if getattr(model, "rpc", None) is not None:
            pytest.skip(f"{request.param} is measured on its board over TVM RPC")
        return model


def test_every_profile_kind_has_a_suite():
    kinds = {get_profile(n).kind for n in list_profiles()}
    assert kinds <= KINDS, f"a profile kind without a contract suite here: {sorted(kinds - KINDS)}"
    for name in list_profiles():
        profile = get_profile(name)
        if profile.kind == "cpu":
            with pytest.raises(MeasurementRequiredError):
                cost_model_for(profile)  # measured, never estimated
        else:
            assert cost_model_for(profile).profile.ref == f"{profile.name}@{profile.version}"

"""Device profiles and cost models: analytic layer-table costs (MACs, params, model size, memory), versioned
device profiles (TOML) and estimated device metrics with provenance (GPU roofline, MCU, FPGA). Measured CPU latency lives in
``hw_profiles.measured`` (torch is imported only when it measures, through ``kernels``)."""

from hw_profiles.analytic import layer_macs, layer_params, macs, params, peak_activation_bytes, weight_bytes
from hw_profiles.cost_model import CostModel, MeasurementRequiredError, cost_model_for
from hw_profiles.measured import MeasuredCostModel, MeasurementFailedError
from hw_profiles.metric import SOURCES, Metric
from hw_profiles.fpga_space import template_source as _template_source
from hw_profiles.profile import Profile, ProfileError, UnknownProfileError, get_profile, list_profiles
from search_spaces.accelerator import set_template_source as _set_template_source

_set_template_source(_template_source)  # get_space("<space>+hw(<fpga profile>)") reads [fpga.search]

__all__ = [
    "SOURCES", "CostModel", "MeasuredCostModel", "MeasurementFailedError", "MeasurementRequiredError", "Metric", "Profile", "ProfileError", "UnknownProfileError",
    "cost_model_for", "get_profile", "layer_macs", "layer_params", "list_profiles", "macs", "params",
    "peak_activation_bytes", "weight_bytes",
]

"""Device profiles and cost models. So far: the analytic layer-table costs."""

from hw_profiles.analytic import layer_macs, layer_params, macs, params, peak_activation_bytes

__all__ = ["layer_macs", "layer_params", "macs", "params", "peak_activation_bytes"]

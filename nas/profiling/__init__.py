"""nas.profiling.device."""

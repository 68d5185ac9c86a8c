"""nas.training."""

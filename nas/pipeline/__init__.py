"""nas.pipeline."""

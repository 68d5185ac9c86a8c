"""nas.report."""

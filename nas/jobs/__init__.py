"""nas.jobs."""

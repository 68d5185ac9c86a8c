"""nas.export.subnet."""

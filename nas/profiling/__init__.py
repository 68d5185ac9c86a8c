"""``nas profile``: ``device`` (profile_device, ProfileResult), ``latency_model`` (LatencyModel); the
drift-robust interleaved measurement in ``_interleaved``."""

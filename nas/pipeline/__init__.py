"""``nas run CONFIG``: train → profile → search → front → export, each stage returning its own frozen
result; resumable. ``run`` (run_pipeline), ``config`` (PipelineConfig; ``experiments/quickstart.toml`` is
one config of it); private stages in ``_stages`` and the front check in ``_front``."""

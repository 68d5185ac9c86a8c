"""``nas export`` and ``nas tune-space``: ``subnet`` (export_subnet, load_subnet, ExportResult), ``from_job``
(resolve_and_export: a job's trial or an arch, with a ``nas train`` folder's weights, exported; what
``nas export`` and the pipeline call), ``tuning`` (tune_space, TuneSpaceResult); private steps in
``_formats``, ``_targets`` (other devices), ``_int8`` (``--quantize``: model.int8.onnx and its report section),
``_int8_tvm`` (what TVM does with the int8 model), ``_accelerator`` (a co-design arch's accelerator.toml),
``_arch_json`` (arch.json and model.pt, checked before ``load_subnet`` builds) and ``_common``."""

"""``nas export`` and ``nas tune-space``: ``subnet`` (export_subnet, load_subnet, ExportResult), ``tuning``
(tune_space, TuneSpaceResult); private steps in ``_formats``, ``_targets`` (other devices), ``_job_member``
(the CLI's arch and weights lookup) and ``_common``."""

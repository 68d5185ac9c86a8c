"""``nas train`` and ``nas eval``: ``train`` (the training job), ``config`` (TrainConfig from TOML),
``distributed`` (torchrun setup), ``evaluation`` (accuracy of a checkpoint's subnet)."""

"""The full-scale experiment configs the README points to parse and bind as documented (not run:
they need ImageNet / CIFAR-10 on disk and, for ImageNet, GPUs and a PostgreSQL server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.pipeline.config import PipelineConfig
from nas.training.config import TrainConfig

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("name, space, data", [
    ("ofa_mbv3_imagenet.toml", "ofa_mbv3", "imagefolder:/data/imagenet"),
    ("cifar10.toml", "tiny_mbv3", "cifar10:data/cifar-10-batches-py"),
    ("quickstart.toml", "tiny_mbv3", "mnist-mini"),
    ("vit_quickstart.toml", "tiny_vit", "mnist-mini"),
    ("autoformer_imagenet.toml", "autoformer_t", "imagefolder:/data/imagenet"),
])
def test_config_parses_for_nas_run_and_nas_train(name, space, data, tmp_path):
    config = PipelineConfig.from_toml(EXPERIMENTS / name)
    assert config.train.space == space and config.train.data == data
    assert TrainConfig.from_toml(EXPERIMENTS / name) == config.train  # `torchrun -m nas train CONFIG` reads [train]
    search = config.search_config(tmp_path)
    assert search.search.space == space
    if name == "ofa_mbv3_imagenet.toml":
        assert search.search.storage == "postgresql://nas@db-host/nas"  # shared with `nas worker`
        assert config.train.strategy == "ps"
    elif name == "autoformer_imagenet.toml":
        assert search.search.storage == "postgresql://nas@db-host/nas"
        assert (config.train.optimizer, config.train.warmup_epochs, config.train.weight_decay) == ("adamw", 5, 0.05)
    else:
        assert search.search.storage == f"sqlite:///{tmp_path.resolve() / 'nas.db'}"


def test_the_quantized_search_config_parses_with_its_policy_space():
    from nas.jobs.config import SearchConfig
    from search_spaces import QuantizedSpace, get_space

    config = SearchConfig.from_toml(EXPERIMENTS / "quantized_search.toml")
    assert isinstance(get_space(config.search.space), QuantizedSpace)
    assert config.quantization.sequential_baseline and config.quantization.samples == 256
    assert config.path(config.accuracy.checkpoint) == EXPERIMENTS / "../runs/tiny"
    assert {c.metric for c in config.constraints} == {"stm32f746.peak_sram_kb", "predicted_accuracy_drop"}

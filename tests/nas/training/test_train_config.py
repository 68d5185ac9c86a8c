"""TrainConfig: defaults, TOML loading, overrides and validation messages."""

from __future__ import annotations

import pytest

from nas.training.config import ConfigError, TrainConfig


def test_defaults_train_tiny_on_embedded_mnist():
    config = TrainConfig()
    assert (config.space, config.data, config.strategy) == ("tiny_mbv3", "mnist-mini", "sandwich")


def test_toml_train_table_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\nstrategy = "ps"\nepochs = 3\nlr = 1\nps_fractions = [0.4, 0.2, 0.2, 0.2]\n')
    config = TrainConfig.from_toml(path)
    assert config.strategy == "ps" and config.epochs == 3 and config.lr == 1.0
    assert config.ps_fractions == (0.4, 0.2, 0.2, 0.2)
    assert config.with_overrides(epochs=5, lr=None).epochs == 5
    assert config.with_overrides(epochs=5).lr == 1.0


def test_hash_changes_with_any_setting_and_is_stable():
    assert TrainConfig().hash == TrainConfig().hash
    assert TrainConfig().hash != TrainConfig(seed=1).hash


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[train]\nepoch = 3\n", "unknown key(s) ['epoch']"),
        ("[train]\nepochs = \"3\"\n", "epochs must be an integer, got '3'"),
        ("[train]\nstrategy = \"greedy\"\n", "strategy='greedy' is not one of ['sandwich', 'ps']"),
        ("[train]\nepochs = 0\n", "c.toml: epochs must be an integer >= 1 and <= 100000, got 0"),
        ("[train\n", "is not valid TOML"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path, toml, fragment):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_toml(path)
    assert fragment in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        TrainConfig.from_toml(tmp_path / "missing.toml")

"""`host-cpu.tvm_latency_ms`: the TVM-compiled subnet's measured latency as a search objective."""

from __future__ import annotations

import pytest

from nas.cli import main
from nas.jobs.results import load_job

CONFIG = """
[search]
space = "tiny_mbv3"
algorithm = "random"
budget = 3
seed = 2
job = "tvm"
storage = "{storage}"

[[objectives]]
name = "tvm_ms"
metric = "host-cpu.tvm_latency_ms"

[[objectives]]
name = "sram_kb"
metric = "stm32f746.peak_sram_kb"
"""


@pytest.mark.tvm
def test_search_optimises_the_tvm_compiled_latency(tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))  # no tuning database: default schedules
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    config = tmp_path / "search.toml"
    config.write_text(CONFIG.format(storage=storage))
    assert main(["search", str(config), "--no-progress", "--no-baseline"]) == 0
    frame = load_job("tvm", storage=storage).trials()
    assert len(frame) == 3 and (frame["tvm_ms"] > 0).all()
    assert set(frame["tvm_ms.source"]) == {"measured"} and set(frame["tvm_ms.profile"]) == {"host-cpu@1"}
    assert frame["tvm_ms.spread"].notna().all()

def test_unknown_cpu_metric_lists_the_known_ones(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.format(storage=f"sqlite:///{tmp_path / 'nas.db'}").replace("tvm_latency_ms", "tvm_ms", 1))
    assert main(["search", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "latency_ms, tvm_latency_ms" in err and err.strip().count("\n") == 0

"""`nas run`: the whole quickstart on a small budget (real training, SQLite store, onnxruntime, TVM),
resumed after a kill and rerun; bad configs fail in one line with nothing written."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import nas
from nas.cli import main

REPO = Path(__file__).resolve().parents[3]
QUICKSTART = REPO / "experiments" / "quickstart.toml"

# the shipped config, shrunk: the same tables and objectives, tiny budgets
SMALL = {
    "epochs = 8": "epochs = 2\nsteps_per_epoch = 4\ncalib_batches = 2",
    "samples = 120": "samples = 12",
    "budget = 50": "budget = 10\nbatch_size = 5",
    "latency_budget_ms = 0.25": "latency_budget_ms = 100.0",
    "repeats = 20": "repeats = 3",  # the first one: [profile]
}


def small_config(tmp: Path, **replace: str) -> Path:
    text = QUICKSTART.read_text()
    for old, new in {**SMALL, **replace}.items():
        assert old in text, old  # the shipped config still has the key this test shrinks
        text = text.replace(old, new, 1)
    path = tmp / "small.toml"
    path.write_text(text)
    return path


def trials_of(out: Path, job: str) -> list[tuple[int, str]]:
    result = nas.load_job(job, storage=f"sqlite:///{out / 'nas.db'}")
    frame = result.trials()
    return sorted(zip(frame["trial"].tolist(), frame["arch_id"].tolist()))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Start `nas run`, SIGKILL it once the first epoch's checkpoint exists, rerun it to the end;
    ``(tmp, config, out, killed_early, exit code, console)``."""
    tmp = tmp_path_factory.mktemp("quickstart")
    config, out = small_config(tmp), tmp / "out"
    proc = subprocess.Popen([sys.executable, "-m", "nas", "run", str(config), "--out", str(out), "--no-progress"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 150
    while not (out / "train" / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_early = not (out / "summary.json").exists()
    console = io.StringIO()
    with contextlib.redirect_stdout(console):
        code = main(["run", str(config), "--out", str(out), "--no-progress"])
    return tmp, config, out, killed_early, code, console.getvalue()


@pytest.mark.slow
@pytest.mark.tvm
def test_pipeline_resumes_training_and_finishes(run):
    tmp, config, out, killed_early, code, console = run
    assert killed_early and code == 0  # killed during training, before any stage finished
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stages"]["train"]["status"] == "resumed"
    assert [summary["stages"][s]["status"] for s in ("profile", "search", "front", "export")] == ["done"] * 4
    assert summary["total_s"] == pytest.approx(sum(s["wall_s"] for s in summary["stages"].values()), abs=0.2)
    for header in ("[1/5] train", "[2/5] profile", "[3/5] search", "[4/5] front", "[5/5] export"):
        assert header in console
    assert "vs random search at equal budget" in console and "within ±10%" in console
    assert summary["search"]["evaluations"] == 10 and summary["search"]["baseline_evaluations"] == 10


@pytest.mark.slow
@pytest.mark.tvm
def test_front_is_non_dominated_and_plotted(run):
    out = run[2]
    with (out / "front.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows
    # minimised: -acc, cpu_ms, sram_kb, flash_kb, fpga_ms
    F = np.array([[-float(r["acc"]), *(float(r[k]) for k in ("cpu_ms", "sram_kb", "flash_kb", "fpga_ms"))]
                  for r in rows])
    for i in range(len(F)):
        for j in range(len(F)):
            assert not (i != j and (F[j] <= F[i]).all() and (F[j] < F[i]).any()), f"row {j} dominates row {i}"
    assert all(r["feasible"] == "True" and float(r["sram_kb"]) <= 320 for r in rows)
    assert {r["acc.source"] for r in rows} == {"measured"} and {r["cpu_ms.source"] for r in rows} == {"predicted"}
    assert {r["fpga_ms.source"] for r in rows} == {"estimated"}
    measured = [r for r in rows if r["cpu_ms.measured_ms"]]
    assert len(measured) == min(3, len(rows)) and all(float(r["cpu_ms.measured_ms"]) > 0 for r in measured)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["front"]["size"] == len(rows) == summary["search"]["hypervolume"]["front_size"]
    assert summary["search"]["hypervolume"]["hypervolume"] > 0
    png = (out / "front.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.slow
@pytest.mark.tvm
def test_export_matches_torch_when_reloaded(run):
    out = run[2]
    import onnxruntime as ort
    import torch

    from kernels.runners import TvmLibraryRunner

    summary = json.loads((out / "summary.json").read_text())
    best = summary["best"]
    report = json.loads((out / "export" / "report.json").read_text())
    assert report["arch_id"] == best["arch_id"] and report["weights"] == "checkpoint"
    for fmt in ("onnx", "tvm"):
        parity = report["formats"][fmt]["parity"]
        assert parity["max_abs_diff"] <= parity["tolerance"] and parity["output_max_abs"] > 0
    # the most accurate front member within the (generous) budget
    with (out / "front.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert best["objectives"]["acc"]["value"] == pytest.approx(max(float(r["acc"]) for r in rows))
    # provenance of every figure about the exported subnet
    assert best["objectives"]["acc"]["source"] == "measured"
    assert best["objectives"]["cpu_ms"]["source"] == "predicted"
    assert best["objectives"]["sram_kb"]["source"] == "estimated"
    assert best["latency_ms"]["predicted"]["source"] == "predicted"
    assert {m["source"] for m in best["latency_ms"]["measured"].values()} == {"measured"}
    assert set(best["latency_ms"]["measured"]) == {"torch", "onnx", "tvm"}

    module = nas.load_subnet(out / "export")
    x = torch.randn(report["input_shape"], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = module(x).numpy()
    other = module(torch.randn_like(x)).detach().numpy()
    assert np.abs(reference - other).max() > 1e-3  # the output depends on the input
    session = ort.InferenceSession(str(out / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"input": x.numpy()})
    tvm_out = TvmLibraryRunner(out / "export" / "model.so", x.numpy(), threads=1).run(x.numpy())
    scale = max(1.0, float(np.abs(reference).max()))
    assert np.abs(onnx_out - reference).max() <= 1e-4 * scale
    assert np.abs(tvm_out - reference).max() <= 1e-4 * scale


@pytest.mark.slow
@pytest.mark.tvm
def test_rerun_skips_and_a_larger_budget_extends_the_same_jobs(run, capsys, tmp_path):
    tmp, config, out = run[:3]
    before = {job: trials_of(out, job) for job in ("quickstart", "quickstart.random")}
    export_sha = json.loads((out / "export" / "report.json").read_text())["formats"]["onnx"]["sha256"]
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {s["status"] for s in summary["stages"].values()} == {"skipped"}
    assert summary["total_s"] < 30
    assert {job: trials_of(out, job) for job in before} == before
    assert json.loads((out / "export" / "report.json").read_text())["formats"]["onnx"]["sha256"] == export_sha

    bigger = small_config(tmp_path, **{"budget = 50": "budget = 14\nbatch_size = 5"})
    assert main(["run", str(bigger), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [summary["stages"][s]["status"] for s in ("train", "profile", "search")] == ["skipped", "skipped", "done"]
    for job, old in before.items():
        now = trials_of(out, job)
        assert now[:len(old)] == old and len(now) == 14  # the same jobs, extended
    assert summary["search"]["evaluations"] == 14
    capsys.readouterr()

    # nothing within the latency budget: one line, exit 2, finished stages untouched
    tight = small_config(tmp_path, **{"budget = 50": "budget = 14\nbatch_size = 5",
                                      "latency_budget_ms = 0.25": "latency_budget_ms = 0.0001"})
    assert main(["run", str(tight), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no Pareto-front subnet has predicted cpu_ms <= 0.0001 ms" in err
    assert (out / "export" / "report.json").exists()


@pytest.mark.parametrize("case", ["table", "key", "device", "no-latency", "storage", "metric", "budget", "data-type",
                                  "algorithm", "direction", "op"])
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    edits = {
        "table": {"[front]": "[fronts]"},
        "key": {"epochs = 8": "epoch = 4"},
        "device": {'device = "host-cpu"': 'device = "zcu104"'},
        "no-latency": {'metric = "host-cpu.latency_ms"': 'metric = "macs"'},
        "storage": {'job = "quickstart"': 'job = "quickstart"\nstorage = 5'},
        "metric": {'metric = "zcu104.latency_ms"': 'metric = "zcu104.latency_s"'},
        "budget": {"latency_budget_ms = 0.25": "latency_budget_ms = -1"},
        "data-type": {"samples = 120": 'samples = "many"'},
        "algorithm": {'algorithm = "linas"': 'algorithm = "lineas"'},
        "direction": {'direction = "maximize"': 'direction = "maximise"'},
        "op": {'op = "<="': 'op = "<"'},
    }[case]
    text = QUICKSTART.read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new, 1)
    config = tmp_path / "bad.toml"
    config.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas run: error: ") and "\n" not in err
    assert not out.exists()


def test_out_must_be_new_or_a_previous_run(tmp_path, capsys):
    (tmp_path / "stranger.txt").write_text("not ours")
    assert main(["run", str(QUICKSTART), "--out", str(tmp_path)]) == 2
    assert "holds no `nas run` output" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stranger.txt"]


@pytest.mark.parametrize("filename, job", [("cifar_like.toml", "cifar_like"), ("quickstart.toml", "quickstart")])
def test_job_defaults_to_the_config_file_name(tmp_path, filename, job):
    from nas.pipeline.config import PipelineConfig

    text = QUICKSTART.read_text()
    assert 'job = "quickstart"\n' in text
    path = tmp_path / filename
    path.write_text(text.replace('job = "quickstart"\n', "", 1))
    config = PipelineConfig.from_toml(path)
    assert config.job == job and config.baseline_job == f"{job}.random"  # runs/quickstart of `make demo` resumes
    assert config.to_dict()["search"]["job"] == job
    assert config.search_config(tmp_path).search.job == job
    assert PipelineConfig.from_toml(QUICKSTART).job == "quickstart"


@dataclass(frozen=True)
class FakeTrainResult:
    KEY: ClassVar[str] = "train"
    status: str

    def to_json(self) -> dict:
        return {"val_top1": {"largest": 0.5}}


def test_stage_records_status_wall_time_and_first_run_time(tmp_path):
    from nas.pipeline._stages import StageContext
    from nas.pipeline.config import PipelineConfig
    from nas.pipeline.run import SUMMARY_NAME, _stage

    lines: list[str] = []
    previous = {"stages": {"train": {"status": "done", "wall_s": 12.5}}}
    ctx = StageContext(config=PipelineConfig.from_toml(QUICKSTART), out=tmp_path, space=None, progress=False,
                       echo=lines.append, previous=previous)
    summary: dict = {"config": {}, "out": str(tmp_path), "stages": {}}
    result = _stage(ctx, summary, "train", "what it does", lambda: FakeTrainResult("skipped"))
    assert result == FakeTrainResult("skipped")
    assert summary["train"] == {"val_top1": {"largest": 0.5}}
    assert summary["stages"]["train"]["status"] == "skipped" and summary["stages"]["train"]["first_run_wall_s"] == 12.5
    assert list(summary) == ["config", "out", "stages", "train", "total_s"]
    assert json.loads((tmp_path / SUMMARY_NAME).read_text()) == summary
    assert lines[0] == "\n[1/5] train: what it does" and lines[1].startswith("[1/5] train: skipped in ")


def test_a_quantized_train_space_is_refused_with_the_way_to_a_quantized_search(tmp_path):
    from nas.pipeline.config import PipelineConfig

    config = tmp_path / "q.toml"
    config.write_text('[train]\nspace = "tiny_mbv3+q"\n[[objectives]]\nname = "macs"\nmetric = "macs"\n')
    from search_spaces import NASError

    with pytest.raises(NASError, match="quantized or co-design search runs with `nas search`"):
        PipelineConfig.from_toml(config)
    config.write_text('[train]\nspace = "tiny_mbv3+hw(zcu104)"\n[[objectives]]\nname = "macs"\nmetric = "macs"\n')
    with pytest.raises(NASError, match="co-design search runs with `nas search`"):
        PipelineConfig.from_toml(config)

"""SIGKILL faults (issue 18): a killed ``nas train`` resumes to a whole run, a killed ``nas export`` leaves
nothing that outlives the next export.

* ``nas train`` is killed at seeded random points (right after it starts, before any checkpoint; in
  the second epoch; early in the resumed second epoch), resumed with ``--resume`` each time, and the
  final log must be that of one whole run: one ``start``, each epoch once with the global step it ends
  on, each stage once, one ``done`` last, and the last epoch's figures those of the checkpoint.
* ``nas export`` is killed while its staging folder exists; the next export to the same ``--out``
  succeeds and no ``.<out>.*`` temporary is left beside it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import tally

from nas.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# The tiny run; the TOML only makes each epoch's evaluation small (tiny_train.toml).
TRAIN = [str(Path(__file__).with_name("tiny_train.toml")), "--epochs", "2", "--steps-per-epoch", "6",
         "--batch-size", "32", "--no-progress"]
EPOCHS, STEPS = 2, 6
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # two cores, shared


def _nas(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _events(out: Path, *, strict: bool) -> list[dict]:
    """The log's events; a line that does not parse fails ``strict`` reading and is skipped otherwise
    (a line being written while the test polls)."""
    path = out / "train_log.jsonl"
    events = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            events.append(json.loads(line))
        except ValueError:
            if strict:
                raise AssertionError(f"a log line does not parse: {line!r}") from None
    return events


def _log_stat(out: Path) -> tuple | None:
    path = out / "train_log.jsonl"
    if not path.exists():
        return None
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def _kill_after(proc: subprocess.Popen, out: Path, delay: float, *, epochs_logged: int = 0) -> str:
    """SIGKILL ``proc`` ``delay`` seconds after it first writes its log (start, or the resumed log:
    rewritten, so a new file) and the log holds ``epochs_logged`` epochs; what it had logged by then."""
    before, deadline = _log_stat(out), time.time() + 120

    def waiting() -> bool:
        epochs = [e for e in _events(out, strict=False) if e.get("event") == "epoch"]
        return _log_stat(out) == before or len(epochs) < epochs_logged

    while waiting() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode not in (0, -signal.SIGKILL):
        return f"failed: {proc.stderr.read()[-800:]}"
    done = [e["epoch"] for e in _events(out, strict=False) if e.get("event") == "epoch"]
    return f"{'finished' if proc.returncode == 0 else 'killed'} after {delay:.2f} s, epochs logged {done}"


def _whole_run_problem(out: Path) -> str | None:
    """Why ``out`` is not the folder of one whole run of TRAIN, or None."""
    from supernets.checkpoint import load_checkpoint

    try:
        events = _events(out, strict=True)
    except AssertionError as err:
        return str(err)
    names = [e["event"] for e in events]
    epochs = [(e["epoch"], e["global_step"]) for e in events if e["event"] == "epoch"]
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    if names[:1] != ["start"] or names.count("start") != 1:
        return f"not one start first: {names}"
    if epochs != [(epoch, STEPS * (epoch + 1)) for epoch in range(EPOCHS)]:
        return f"epochs (epoch, global step) logged: {epochs}"
    if len(stages) != len(set(stages)):
        return f"a stage logged twice: {stages}"
    if names.count("done") != 1 or names[-1] != "done" or events[-1]["global_step"] != EPOCHS * STEPS:
        return f"not one done last at step {EPOCHS * STEPS}: {names}"
    meta = load_checkpoint(out)["meta"]
    last = [e for e in events if e["event"] == "epoch"][-1]
    if (meta["epoch"], meta["global_step"]) != (EPOCHS - 1, EPOCHS * STEPS):
        return f"checkpoint at epoch {meta['epoch']}, step {meta['global_step']}"
    if {k: v["top1"] for k, v in last["val"].items()} != meta["val"]:
        return f"the last epoch's val {last['val']} is not the checkpoint's {meta['val']}"
    if stray := sorted(p.name for p in out.iterdir() if p.name.startswith(".")):
        return f"temporary files left: {stray}"
    return None


def test_sigkilled_train_resumes_to_one_whole_run(tmp_path):
    rng = random.Random(18)
    out = tmp_path / "run"
    # (delay, epochs logged before it): right after the start (before the first checkpoint), in the
    # second epoch (after the first checkpoint), and again early in the resumed second epoch.
    kills = [(rng.uniform(0.0, 0.3), 0), (rng.uniform(0.0, 2.0), 1), (rng.uniform(0.0, 2.0), 1)]
    history, problem = [], None
    for n, (delay, epochs_logged) in enumerate(kills):
        args = ["train", "--out", str(out), *TRAIN, *(["--resume"] if n else [])]
        history.append(_kill_after(_nas(*args), out, delay, epochs_logged=epochs_logged))
        if history[-1].startswith("failed"):
            problem = f"run {n + 1} {history[-1]}"
            break
    if problem is None:
        final = subprocess.run([sys.executable, "-m", "nas", "train", "--out", str(out), *TRAIN, "--resume"],
                               cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        problem = (f"the last --resume failed: {final.stderr[-800:]}" if final.returncode
                   else _whole_run_problem(out))
    tally("fault", "train", broken=problem is not None, examples=len(kills))
    assert problem is None, f"{problem} (runs: {history})"


def _temporaries(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def test_sigkilled_export_leaves_nothing_the_next_export_keeps(tmp_path, capsys):
    from search_spaces import get_space

    rng = random.Random(18)
    arch = get_space("tiny_mbv3").sample(np.random.default_rng(0)).to_json()
    out = tmp_path / "exp"
    argv = ["export", "--space", "tiny_mbv3", "--arch", arch, "--format", "torch,onnx", "--out", str(out),
            "--quiet", "--repeats", "2"]
    for attempt in range(3):  # the export must still be running when it is killed
        proc = _nas(*argv)
        deadline = time.time() + 120
        while not _temporaries(tmp_path, "exp") and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.2) if attempt == 0 else 0.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL and not out.exists() and _temporaries(tmp_path, "exp"):
            break
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read()[-800:]
        for path in (out, *(tmp_path / n for n in _temporaries(tmp_path, "exp"))):
            subprocess.run(["rm", "-rf", str(path)], check=True)
    else:
        pytest.fail("the export finished before every kill")
    left_by_kill = _temporaries(tmp_path, "exp")
    code = main(argv)
    err = capsys.readouterr().err
    problem = None
    if code != 0:
        problem = f"the next export failed: {err.strip()[-500:]}"
    elif _temporaries(tmp_path, "exp"):
        problem = f"temporaries left: {_temporaries(tmp_path, 'exp')} (the kill left {left_by_kill})"
    elif sorted(p.name for p in out.iterdir()) != ["arch.json", "model.onnx", "model.pt", "report.json"]:
        problem = f"the export folder holds {sorted(p.name for p in out.iterdir())}"
    tally("fault", "export", broken=problem is not None)
    assert problem is None, problem

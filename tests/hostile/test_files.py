"""Hostile output folders (issue 18, part 3): what ``nas train --out`` accepts and what a dead run leaves.

* ``nas train --out DIR`` takes a new or empty folder, or (``--resume``) a folder of a previous run:
  anything else is refused with one line and left untouched (``nas.training.train`` docstring).
* A resumed run reads its log back: a folder as a kill leaves it (the epoch's line not yet written,
  a torn last line, a finished run) resumes to a log with each epoch, stage and ``done`` once.
* ``nas export`` / ``nas profile`` stage into ``.<out>.<tag><host>-<pid>.<random>``: the next run on the
  same ``--out`` removes the temporaries of dead writers and keeps live ones (``nas._folders``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tally

from nas._process import process_namespace
from nas.cli import main
from nas.training.config import TrainConfig

CONFIG = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=8, calib_batches=1, val_fraction=0.02,
                     eval_batch_size=100)  # a run that trains in seconds
TINY = [str(Path(__file__).with_name("tiny_train.toml")), "--no-progress"]  # CONFIG as nas train arguments


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def _line(event: str, **fields) -> str:
    return json.dumps({"event": event, "time": 1.0, **fields}) + "\n"


def _run_folder(out: Path, *, epoch_line: bool = True, extra_log: str = "") -> Path:
    """A finished 1-epoch run of CONFIG as ``nas train`` writes it (untrained weights: nothing trains
    on resume), the checkpoint's epoch line in the log unless ``epoch_line`` is False."""
    from nas.data import load_data
    from nas.training.train import build_optimizer, build_supernet
    from supernets.checkpoint import capture_rng_state, save_checkpoint

    data = load_data(CONFIG.data, seed=CONFIG.seed, val_fraction=CONFIG.val_fraction)
    supernet = build_supernet(CONFIG, data)
    record = {"event": "epoch", "time": 2.0, "epoch": 0, "stage": "sandwich", "global_step": 2, "train_loss": 2.3,
              "seconds": 1.0, "val": {"largest": {"top1": 0.1, "loss": 2.3, "n": 10}}}
    meta = {"space": supernet.space.name, "space_version": supernet.space.version, "config_hash": CONFIG.hash,
            "config": CONFIG.to_dict(), "strategy": CONFIG.strategy, "stage": "sandwich", "epoch": 0,
            "global_step": 2, "rng": capture_rng_state(), "world_size": 1, "val": {"largest": 0.1},
            "epoch_event": record}
    save_checkpoint(out, model_state=supernet.state_dict(),
                    optimizer_state=build_optimizer(supernet, CONFIG).state_dict(), meta=meta)
    (out / "config.json").write_text(json.dumps(CONFIG.to_dict(), indent=2))
    log = _line("start", config=CONFIG.to_dict()) + _line("stage", stage="sandwich", start=0, end=2)
    if epoch_line:
        log += json.dumps(record) + "\n"
    (out / "train_log.jsonl").write_text(log + extra_log)
    return out


# ------------------------------------------------------------------------------------ nas train --out
@pytest.mark.parametrize("case", ["user-log-and-config", "notes", "other-settings-leftovers"])
def test_train_refuses_a_non_empty_folder_without_a_run_and_touches_nothing(tmp_path, hostile_cli, case):
    out = tmp_path / "mine"
    out.mkdir()
    if case == "user-log-and-config":  # the reported loss: both files were truncated
        (out / "train_log.jsonl").write_text("my own notes, line 1\nline 2\n")
        (out / "config.json").write_text('{"mine": true}\n')
    elif case == "notes":
        (out / "notes.txt").write_text("keep me")
    else:  # a run of other settings stopped before its first checkpoint: not this run's to restart
        (out / "config.json").write_text(json.dumps({**CONFIG.to_dict(), "lr": 0.5}))
        (out / "train_log.jsonl").write_text(_line("start"))
    hostile_cli(["train", "--out", str(out), *TINY], watch=[tmp_path], contains="--out")


def test_train_refuses_a_file_as_out(tmp_path, hostile_cli):
    out = tmp_path / "a-file"
    out.write_text("not a folder")
    hostile_cli(["train", "--out", str(out), *TINY], watch=[tmp_path], contains="not a folder")


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_resume_needs_a_previous_run(tmp_path, hostile_cli, case):
    out = tmp_path / "run"
    if case == "empty":
        out.mkdir()
    hostile_cli(["train", "--out", str(out), *TINY, "--resume"], watch=[tmp_path], contains="no previous run")


@pytest.mark.parametrize("case", ["foreign-file", "foreign-folder", "foreign-log"])
def test_resume_refuses_a_folder_holding_what_train_does_not_write(tmp_path, hostile_cli, case):
    out = _run_folder(tmp_path / "run")
    if case == "foreign-file":
        (out / "notes.txt").write_text("keep me")
    elif case == "foreign-folder":
        (out / "plots").mkdir()
    else:  # a user's file of the log's name beside a checkpoint of ours
        (out / "train_log.jsonl").write_text("2026-11-02 my own log\n")
    hostile_cli(["train", "--out", str(out), *TINY, "--resume"], watch=[tmp_path])


# -------------------------------------------------------------------- the log of a resumed run
def _resume_log(out: Path, capsys) -> list[dict]:
    code = main(["train", "--out", str(out), *TINY, "--resume"])
    assert code == 0, capsys.readouterr().err
    return _events(out)  # every line must parse


def _check_log(events: list[dict]) -> str | None:
    """Why ``events`` is not the log of one whole 1-epoch run, or None."""
    names = [e["event"] for e in events]
    if names[0] != "start" or names.count("start") != 1:
        return f"not one start first: {names}"
    if [e["epoch"] for e in events if e["event"] == "epoch"] != [0]:
        return f"epoch events {[e.get('epoch') for e in events if e['event'] == 'epoch']}, expected [0]"
    if names.count("stage") != 1 or names.count("done") != 1 or names[-1] != "done":
        return f"stages/done not once each, done last: {names}"
    return None


@pytest.mark.parametrize("case", ["killed-between-checkpoint-and-log", "torn-last-line", "finished",
                                  "finished-then-killed-mid-resume"])
def test_a_resumed_log_has_each_epoch_stage_and_done_once(tmp_path, capsys, case):
    out = tmp_path / "run"
    if case == "killed-between-checkpoint-and-log":
        _run_folder(out, epoch_line=False)
    elif case == "torn-last-line":
        _run_folder(out, extra_log='{"event": "sta')
    elif case == "finished":  # and evaluated: nas eval's caches belong to the run folder
        from nas.training import evaluation, quantized
        from nas.training.train import EVAL_CACHE_FILES

        assert set(EVAL_CACHE_FILES) == {evaluation.CACHE_NAME, quantized.CACHE_NAME}
        _run_folder(out, extra_log=_line("done", global_step=2))
        (out / "eval_cache.json").write_text("{}")
    else:
        _run_folder(out, extra_log=_line("done", global_step=2) + _line("resume", epoch=0, global_step=2))
    problem = _check_log(_resume_log(out, capsys))
    tally("fault", "train", broken=problem is not None)
    assert problem is None, problem


@pytest.mark.slow  # it trains (a few seconds warm, ~25 s cold on 2 busy cores)
def test_resume_starts_over_a_run_stopped_before_its_first_checkpoint(tmp_path, capsys):
    """Only ``config.json`` (these settings) and the log's first lines: nothing to resume from, so
    ``--resume`` starts the run over (as a run without ``--resume`` does: the pipeline's restart)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(CONFIG.to_dict(), indent=2))
    (out / "train_log.jsonl").write_text(_line("start") + _line("stage", stage="sandwich", start=0, end=2))
    assert main(["train", "--out", str(out), *TINY, "--resume"]) == 0, capsys.readouterr().err
    problem = _check_log(_events(out))
    tally("fault", "train", broken=problem is not None)
    assert problem is None, problem


# ---------------------------------------------------------------- stale staging temporaries
HOST = process_namespace()  # the writer tag of this host, boot and pid namespace


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temporary(parent: Path, out_name: str, tag: str, host: str, pid: int) -> Path:
    """A staging folder as ``staged_folder`` names it, with a half-written file inside."""
    tmp = parent / f".{out_name}.{tag}{host}-{pid}.k3x_9q2a"
    tmp.mkdir(parents=True)
    (tmp / "model.pt").write_bytes(b"half")
    return tmp


def test_staged_folder_removes_dead_writers_temporaries_and_keeps_the_rest(tmp_path):
    from nas._folders import staged_folder

    out = tmp_path / "out"
    dead = [_temporary(tmp_path, "out", "export-", HOST, _dead_pid()),
            _temporary(tmp_path, "out", "", HOST, _dead_pid())]
    kept = [_temporary(tmp_path, "out", "export-", HOST, os.getppid()),  # alive
            _temporary(tmp_path, "out", "", HOST, os.getpid()),  # this very process
            _temporary(tmp_path, "out", "export-", "0badc0de" if HOST != "0badc0de" else "1badc0de",
                       _dead_pid()),  # another host: its pid means nothing here
            _temporary(tmp_path, "other", "export-", HOST, _dead_pid())]  # another --out
    user = [tmp_path / ".out.export-abcdefgh", tmp_path / ".out.mine", tmp_path / "out.bak"]  # not of this form
    for folder in user:
        folder.mkdir()
    with staged_folder(out, tag="export-") as folder:
        (folder / "report.json").write_text("{}")
    left = sorted(p.name for p in tmp_path.iterdir())
    problem = None
    if any(p.exists() for p in dead):
        problem = f"a dead writer's temporary was left: {left}"
    elif not all(p.exists() for p in kept + user):
        problem = f"removed what is not a dead writer's temporary: {left}"
    tally("fault", "staged_folder", broken=problem is not None)
    assert problem is None
    assert (out / "report.json").exists()


def test_nas_export_removes_a_dead_exports_temporary(tmp_path, capsys):
    from search_spaces import get_space

    arch = get_space("tiny_mbv3").sample(np.random.default_rng(0)).to_json()
    out = tmp_path / "exp"
    dead = _temporary(tmp_path, "exp", "export-", HOST, _dead_pid())
    live = _temporary(tmp_path, "exp", "export-", HOST, os.getppid())
    assert main(["export", "--space", "tiny_mbv3", "--arch", arch, "--format", "torch", "--out", str(out),
                 "--quiet", "--repeats", "2"]) == 0, capsys.readouterr().err
    problem = None if not dead.exists() and live.exists() else f"left: {sorted(p.name for p in tmp_path.iterdir())}"
    tally("fault", "export", broken=problem is not None)
    assert problem is None
    assert (out / "model.pt").exists()

"""Atomic training checkpoints: round trip, RNG state, validation, load errors, atomicity, SIGKILL."""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from search_spaces import NASError
from supernets import create_supernet
from supernets.checkpoint import (
    CHECKPOINT_NAME, FORMAT_VERSION, REQUIRED_META_KEYS, CheckpointError, atomic_torch_save, atomic_write_bytes,
    capture_rng_state, file_sha256, load_checkpoint, remove_stale_temp_files, restore_rng_state, save_checkpoint,
)


@pytest.fixture(autouse=True)
def _keep_global_torch_rng():
    """Tests here draw from and reset torch's global RNG; give other tests theirs back unchanged."""
    with torch.random.fork_rng(devices=[]):
        yield


def _meta(**overrides) -> dict:
    meta = {"space": "tiny_mbv3", "space_version": 1, "config_hash": "c0ffee", "strategy": "sandwich",
            "stage": "kernel", "epoch": 3, "global_step": 120, "rng": capture_rng_state(np.random.default_rng(0)),
            "history": [{"loss": 1.25, "ok": True, "note": None}], "shape": (1, 28, 28)}
    meta.update(overrides)
    return meta


def _assert_same(a, b, where="value"):
    """Deep equality where tensors compare by dtype, shape and exact values."""
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# 1. round trip ---------------------------------------------------------------------------------------

def test_round_trip_of_a_real_supernet_and_sgd_state(tmp_path):
    net = create_supernet("tiny_mbv3", seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(net.input_shape(net.active_arch, 4), generator=torch.Generator().manual_seed(0))
    torch.nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()  # creates momentum buffers, so the optimizer state is not empty
    meta = _meta()

    path = save_checkpoint(tmp_path / "run", model_state=net.state_dict(), optimizer_state=opt.state_dict(), meta=meta)

    assert path == tmp_path / "run" / CHECKPOINT_NAME
    assert sorted(os.listdir(tmp_path / "run")) == [CHECKPOINT_NAME]
    for where in (tmp_path / "run", path):  # the directory or the file
        loaded = load_checkpoint(where)
        assert set(loaded) == {"model", "optimizer", "meta", "sha256"}
        _assert_same(dict(net.state_dict()), dict(loaded["model"]), "model")
        _assert_same(opt.state_dict(), loaded["optimizer"], "optimizer")
        _assert_same(meta, loaded["meta"], "meta")
        assert loaded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == file_sha256(path)
    twin = create_supernet("tiny_mbv3", seed=1)
    twin.load_state_dict(loaded["model"])
    torch.optim.SGD(twin.parameters(), lr=1e-3, momentum=0.9).load_state_dict(loaded["optimizer"])
    net.eval(), twin.eval()
    assert torch.isfinite(net(x)).all() and torch.equal(net(x), twin(x))


def test_atomic_write_bytes_replaces_content(tmp_path):
    target = tmp_path / "arch.json"
    atomic_write_bytes(target, b'{"a": 1}')
    atomic_write_bytes(target, b'{"a": 2}')
    assert target.read_bytes() == b'{"a": 2}'
    assert os.listdir(tmp_path) == ["arch.json"]


# 2. RNG state ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937, np.random.Philox, np.random.SFC64])
def test_rng_capture_restore_reproduces_draws_through_a_checkpoint(tmp_path, bit_generator):
    torch.manual_seed(7)
    gen = np.random.Generator(bit_generator(7))
    torch.rand(3), gen.random(3)  # move away from the seeded state
    save_checkpoint(tmp_path, model_state={}, optimizer_state=None, meta=_meta(rng=capture_rng_state(gen)))
    expected_torch, expected_numpy = torch.rand(5), gen.random(5)
    torch.rand(11), gen.random(11)

    rng = load_checkpoint(tmp_path)["meta"]["rng"]
    other = np.random.Generator(bit_generator(999))
    restore_rng_state(rng, other)

    assert torch.equal(torch.rand(5), expected_torch)
    np.testing.assert_array_equal(other.random(5), expected_numpy)
    assert rng["torch"].dtype == torch.uint8 and rng["cuda"] == []


def test_pcg64_state_keeps_its_128_bit_ints_as_python_ints(tmp_path):
    save_checkpoint(tmp_path, model_state={}, optimizer_state=None,
                    meta=_meta(rng=capture_rng_state(np.random.default_rng(3)), big=2**127 + 1))
    meta = load_checkpoint(tmp_path)["meta"]
    state = meta["rng"]["numpy"]["state"]
    assert type(state["state"]) is int and type(state["inc"]) is int and state["inc"] > 2**64
    assert meta["big"] == 2**127 + 1


def test_restore_into_a_generator_without_a_captured_numpy_state_raises():
    with pytest.raises(ValueError, match="no numpy state"):
        restore_rng_state(capture_rng_state(None), np.random.default_rng(0))


# 3. meta validation ----------------------------------------------------------------------------------

def test_missing_meta_keys_are_listed(tmp_path):
    assert REQUIRED_META_KEYS == ("space", "space_version", "config_hash", "strategy", "stage", "epoch",
                                  "global_step", "rng")
    meta = _meta()
    del meta["epoch"], meta["rng"]
    with pytest.raises(ValueError, match=r"missing required keys: \['epoch', 'rng'\]"):
        save_checkpoint(tmp_path, model_state={}, optimizer_state=None, meta=meta)
    assert not (tmp_path / CHECKPOINT_NAME).exists()


@pytest.mark.parametrize(("meta_extra", "where"), [
    ({"stats": np.zeros(3)}, r"meta\['stats'\] holds a numpy.ndarray"),
    ({"history": [{"acc": np.float64(0.5)}]}, r"meta\['history'\]\[0\]\['acc'\] holds a numpy.float64"),
    ({"space": object()}, r"meta\['space'\] holds a builtins.object"),
    ({"by_arch": {("a", 1): 0.5}}, r"meta\['by_arch'\] has a key of type tuple"),
    ({"path": Path("x")}, r"meta\['path'\] holds a pathlib"),
])
def test_meta_that_weights_only_could_not_load_is_rejected_naming_the_key(tmp_path, meta_extra, where):
    with pytest.raises(ValueError, match=where):
        save_checkpoint(tmp_path, model_state={}, optimizer_state=None, meta=_meta(**meta_extra))
    assert os.listdir(tmp_path) == []


def test_states_are_validated_too(tmp_path):
    with pytest.raises(ValueError, match=r"model_state\['w'\] holds a numpy.ndarray"):
        save_checkpoint(tmp_path, model_state={"w": np.ones(2)}, optimizer_state=None, meta=_meta())
    with pytest.raises(ValueError, match=r"optimizer_state\['state'\]\[0\]\['lr'\]"):
        save_checkpoint(tmp_path, model_state={}, optimizer_state={"state": {0: {"lr": np.float32(1)}}}, meta=_meta())


# 4. load errors --------------------------------------------------------------------------------------

def _load_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert isinstance(info.value, NASError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_directory_or_file(tmp_path):
    assert _load_error(tmp_path / "nowhere") == f"no checkpoint at {tmp_path / 'nowhere'}"
    assert _load_error(tmp_path) == f"no checkpoint at {tmp_path / CHECKPOINT_NAME}"


def test_truncated_garbage_and_foreign_files_name_the_file(tmp_path):
    good = save_checkpoint(tmp_path / "good", model_state={"w": torch.arange(1000.0)}, optimizer_state=None,
                           meta=_meta())
    cases = {
        "truncated": good.read_bytes()[: good.stat().st_size // 2],
        "garbage": bytes(range(256)) * 40,
        "empty": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / CHECKPOINT_NAME).write_bytes(data)
        assert str(tmp_path / name / CHECKPOINT_NAME) in _load_error(tmp_path / name), name
    for name, obj, fault in [("v2", {"format_version": 2, "model": {}, "optimizer": None, "meta": _meta()}, "format_version is 2"),
                             ("nover", {"model": {}, "optimizer": None, "meta": _meta()}, "format_version is None"),
                             ("list", [1, 2, 3], "holds a list"),
                             ("nomodel", {"format_version": FORMAT_VERSION, "optimizer": None, "meta": _meta()}, "lacks"),
                             ("nometa", {"format_version": FORMAT_VERSION, "model": {}, "optimizer": None,
                                         "meta": {"epoch": 1}}, "missing required keys")]:
        torch.save(obj, tmp_path / f"{name}.pt")
        message = _load_error(tmp_path / f"{name}.pt")
        assert message.startswith(f"{tmp_path / name}.pt: ") and fault in message, message


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the raw pickle's protocol 4
def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    control = tmp_path / "control-ran"
    pickle.loads(pickle.dumps(_Exploit(control)))  # the payload is real: plain unpickling runs it
    assert control.exists()

    marker = tmp_path / "pwned"
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / CHECKPOINT_NAME).write_bytes(pickle.dumps(_Exploit(marker)))
    torch.save({"format_version": FORMAT_VERSION, "model": {}, "optimizer": None,
                "meta": _meta(payload=_Exploit(marker))}, tmp_path / "zipped.pt")
    assert "unsafe" in _load_error(tmp_path / "raw")
    assert "unsafe" in _load_error(tmp_path / "zipped.pt")
    assert not marker.exists()


# 5. atomicity ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("failure", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch, failure):
    save_checkpoint(tmp_path, model_state={"w": torch.ones(100)}, optimizer_state=None, meta=_meta(epoch=1))
    before = file_sha256(tmp_path / CHECKPOINT_NAME)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint" * 1000)
        f.flush()
        assert len(_temp_files(tmp_path)) == 1  # the bytes really went to a temp file beside the target
        raise failure

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(type(failure)):
        save_checkpoint(tmp_path, model_state={"w": torch.zeros(100)}, optimizer_state=None, meta=_meta(epoch=2))

    assert os.listdir(tmp_path) == [CHECKPOINT_NAME]
    loaded = load_checkpoint(tmp_path)
    assert loaded["meta"]["epoch"] == 1 and loaded["sha256"] == before
    assert torch.equal(loaded["model"]["w"], torch.ones(100))


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_failure_after_writing_keeps_the_old_file(tmp_path, monkeypatch, step):
    target = tmp_path / "result.json"
    atomic_write_bytes(target, b"old")

    def fail(*args):
        raise OSError(f"{step} failed")

    monkeypatch.setattr(os, step, fail)
    with pytest.raises(OSError, match=step):
        atomic_write_bytes(target, b"new")
    with pytest.raises(OSError, match=step):
        atomic_torch_save({"x": 1}, target)
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["result.json"]


def test_stale_temp_files_of_dead_writers_are_ignored_by_load_and_removed_by_the_next_save(tmp_path):
    save_checkpoint(tmp_path, model_state={"w": torch.ones(3)}, optimizer_state=None, meta=_meta(epoch=1))
    dead, alive = _dead_pid(), os.getppid()
    names = {
        "dead": f".{CHECKPOINT_NAME}.{dead}.0123abcd.tmp",
        "alive": f".{CHECKPOINT_NAME}.{alive}.0123abcd.tmp",
        "mine": f".{CHECKPOINT_NAME}.{os.getpid()}.0123abcd.tmp",
        "other target": f".arch.json.{dead}.0123abcd.tmp",
        "unrelated": "notes.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")

    assert load_checkpoint(tmp_path)["meta"]["epoch"] == 1
    save_checkpoint(tmp_path, model_state={"w": torch.ones(3)}, optimizer_state=None, meta=_meta(epoch=2))

    assert not (tmp_path / names["dead"]).exists()
    assert all((tmp_path / names[k]).exists() for k in ("alive", "mine", "other target", "unrelated"))
    assert remove_stale_temp_files(tmp_path, "arch.json") == [tmp_path / names["other target"]]
    assert load_checkpoint(tmp_path)["meta"]["epoch"] == 2


# 6. SIGKILL during saves -----------------------------------------------------------------------------

KILL_CHILD = r"""
import sys
from pathlib import Path
import torch
from supernets.checkpoint import CheckpointError, capture_rng_state, load_checkpoint, save_checkpoint

directory = Path(sys.argv[1])
try:
    epoch = load_checkpoint(directory)["meta"]["epoch"]  # resume, as a trainer would
except CheckpointError:
    epoch = 0
model = {"a": torch.empty(6_000_000), "b": torch.empty(1_000_000, dtype=torch.int64)}  # ~32 MB
while True:
    epoch += 1
    model["a"].fill_(float(epoch))
    model["b"].fill_(epoch)
    meta = {"space": "tiny_mbv3", "space_version": "1", "config_hash": "c0ffee", "strategy": "sandwich",
            "stage": "sandwich", "epoch": epoch, "global_step": 100 * epoch, "rng": capture_rng_state()}
    save_checkpoint(directory, model_state=model, optimizer_state={"step": epoch}, meta=meta)
    print(epoch, flush=True)
"""


def _wait_for_a_temp_file(directory: Path, child: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not _temp_files(directory) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)


@pytest.mark.slow
def test_sigkill_at_random_moments_during_saves_never_corrupts_the_checkpoint(tmp_path):
    rnd = random.Random(20261122)
    directory = tmp_path / "run"
    previous_temps: set[str] = set()
    last_epoch, mid_save_kills = 0, 0
    for round_index in range(5):
        child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(directory)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(120, child.kill)
        watchdog.start()
        try:
            first = child.stdout.readline()  # the child's first save of this round is complete
            assert first, f"child died before saving: {child.stderr.read()}"
            assert not previous_temps & set(_temp_files(directory)), "last round's temp file survived a save"
            time.sleep(rnd.uniform(0.0, 0.25))
            _wait_for_a_temp_file(directory, child)  # a save is under way (one takes ~30-100 ms here) ...
            time.sleep(rnd.uniform(0.0, 0.02))  # ... so this kill usually lands in it, at a random point
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            watchdog.cancel()
            if child.poll() is None:
                child.kill()
                child.wait()
        printed = [int(first)] + [int(line) for line in child.stdout.read().split()]
        child.stdout.close(), child.stderr.close()
        temps = _temp_files(directory)
        mid_save_kills += bool(temps)

        loaded = load_checkpoint(directory)  # stray temp files, if any, are not read
        epoch = loaded["meta"]["epoch"]
        # the newest reported save, or the one after it if the kill fell between os.replace and print
        assert printed[-1] <= epoch <= printed[-1] + 1, (printed, epoch)
        assert epoch > last_epoch and printed[0] == last_epoch + 1  # resumed from the last durable save
        assert torch.equal(loaded["model"]["a"], torch.full((6_000_000,), float(epoch)))
        assert torch.equal(loaded["model"]["b"], torch.full((1_000_000,), epoch, dtype=torch.int64))
        assert loaded["optimizer"] == {"step": epoch} and loaded["meta"]["global_step"] == 100 * epoch
        assert loaded["sha256"] == file_sha256(directory / CHECKPOINT_NAME)
        last_epoch, previous_temps = epoch, set(temps)
    print(f"kills that hit mid-save (temp file left behind): {mid_save_kills}/5")
    assert mid_save_kills >= 1, "no kill landed during a save; the test exercised nothing"
    # the next save cleans what the last kill left
    save_checkpoint(directory, model_state={}, optimizer_state=None, meta=_meta(epoch=last_epoch + 1))
    assert _temp_files(directory) == []

"""Measure an exported TVM library on a device through TVM RPC (Apache TVM 0.27), loopback-testable.

Contract: tvm is imported lazily (through :func:`kernels.tvm._common._tvm`) and every failure is a
:class:`KernelError` naming the step: connect, upload, load or run. TVM RPC needs extras the wheel
leaves out (cloudpickle, psutil, tornado); without them each entry point raises :data:`RPC_MISSING`.

- :class:`LoopbackRpc` starts ``python -m tvm.exec.rpc_tracker`` and one
  ``python -m tvm.exec.rpc_server --tracker 127.0.0.1:PORT --key KEY`` as subprocesses bound to
  127.0.0.1, waits (bounded) until the tracker lists the key, and stops both on exit (terminate,
  then kill).
- :func:`measure_remote` requests a session from the tracker (``tvm.rpc.connect_tracker(host,
  port).request(key)``), uploads the ``.so`` that :func:`kernels.tvm.build.export_library` wrote,
  loads it remotely (``remote.load_module``), builds ``relax.VirtualMachine(remote_mod,
  remote.cpu())`` and times it with the stateful API that works over RPC:
  ``vm.set_input("main", x)`` then ``vm.time_evaluator("invoke_stateful", dev, number=,
  repeat=)("main")``. TVM discards one warm-up call; each of the ``repeats`` samples is the mean of
  ``number`` calls. The result is a :class:`RemoteMeasurement`: the :class:`Timing` (backend
  ``"tvm-rpc"``) and the remote output as numpy (for parity checks).
"""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.errors import KernelError
from kernels.timing import Timing, check_protocol, summarize
from kernels.tvm._common import _tvm

RPC_MISSING = "TVM RPC needs extras that the apache-tvm wheel leaves out: pip install cloudpickle psutil tornado"
BACKEND = "tvm-rpc"
_EXTRAS = ("cloudpickle", "psutil", "tornado")


def _check_extras() -> None:
    import importlib.util

    missing = [name for name in _EXTRAS if importlib.util.find_spec(name) is None]
    if missing:
        raise KernelError(f"{RPC_MISSING} (missing: {', '.join(missing)})")


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:300]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip() or "(empty)"
    except OSError:
        return "(unreadable)"


def _port_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _signal_group(pgid: int, sig) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _stop_group(proc: subprocess.Popen) -> None:
    """Terminate the process group that ``proc`` leads (it and its listener child), then kill it."""
    import signal

    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    _signal_group(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and _signal_group(pgid, 0):
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=5)


class LoopbackRpc:
    """A tracker and one server on 127.0.0.1, registered under ``key``; a context manager."""

    def __init__(self, key: str = "hwnas-loopback", *, start_timeout_s: float = 30.0, log_dir=None) -> None:
        if not key or not isinstance(key, str):
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        self.key = key
        self.tracker_host = "127.0.0.1"
        self.tracker_port: int | None = None
        self.start_timeout_s = float(start_timeout_s)
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self.tracker: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self._logs: list = []

    def _spawn(self, name: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
        import tempfile

        folder = self._log_dir or Path(tempfile.mkdtemp(prefix="hwnas-rpc-"))
        log = folder / f"{name}.log"
        handle = open(log, "wb")
        self._logs.append(handle)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # a session of its own: the tracker and server each run their listener in a child process,
        # which must stop with them (see close)
        proc = subprocess.Popen([sys.executable, "-m", *args], stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        return proc, log

    def __enter__(self) -> "LoopbackRpc":
        _tvm()
        _check_extras()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        from tvm import rpc

        self.tracker_port = _free_port()
        self.tracker, tracker_log = self._spawn("tracker", [
            "tvm.exec.rpc_tracker", "--host", self.tracker_host, "--port", str(self.tracker_port),
            "--port-end", str(self.tracker_port + 1), "--silent"])
        deadline = time.monotonic() + self.start_timeout_s
        last = "no answer"
        server_log = None
        while time.monotonic() < deadline:
            if self.server is None and _port_listening(self.tracker_port):
                # started once the tracker listens: a server that finds no tracker retries only every 5 s
                server_port = _free_port()
                self.server, server_log = self._spawn("server", [
                    "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(server_port),
                    "--port-end", str(server_port + 50), "--tracker", f"{self.tracker_host}:{self.tracker_port}",
                    "--key", self.key])
            for name, proc, log in (("tracker", self.tracker, tracker_log), ("server", self.server, server_log)):
                if proc is not None and proc.poll() is not None:
                    raise KernelError(f"TVM RPC start failed: the {name} exited with code {proc.returncode}; "
                                      f"its output: {_tail(log)}")
            if self.server is None:
                time.sleep(0.1)
                continue
            try:
                summary = rpc.connect_tracker(self.tracker_host, self.tracker_port).summary()
                keys = [str(info.get("key", "")) for info in summary.get("server_info", [])]
                if any(k == self.key or k.split(":", 1)[-1] == self.key for k in keys):
                    return
                last = f"tracker up, keys listed: {keys}"
            except Exception as err:  # noqa: BLE001 - the tracker is not listening yet
                last = f"tracker not reachable: {_first_line(err)}"
            time.sleep(0.2)
        raise KernelError(f"TVM RPC start failed: the server with key {self.key!r} did not come up on the tracker "
                          f"127.0.0.1:{self.tracker_port} within {self.start_timeout_s:g} s ({last}); "
                          f"server output: {_tail(server_log) if server_log else '(not started)'}; "
                          f"tracker output: {_tail(tracker_log)}")

    def close(self) -> None:
        for proc in (self.server, self.tracker):
            if proc is not None:
                _stop_group(proc)
        for handle in self._logs:
            handle.close()
        self._logs = []

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class RemoteMeasurement:
    """A remote timing and the remote output (first output, numpy) of one run on the same input."""

    timing: Timing
    output: np.ndarray


def measure_remote(library_path, input_array, *, tracker_host: str, tracker_port: int, key: str,
                   repeats: int = 20, number: int = 1, timeout_s: float = 60,
                   threads: int = 1) -> RemoteMeasurement:
    """Upload the library at ``library_path`` to a server registered under ``key``, time ``main`` on
    ``input_array`` there (``repeats`` samples, each the mean of ``number`` calls) and fetch its output.
    ``threads`` is only recorded: the server's own ``TVM_NUM_THREADS`` decides how many it uses."""
    check_protocol(warmup=0, repeats=repeats, threads=threads)
    check_protocol(warmup=0, repeats=number)
    path = Path(library_path)
    if not path.is_file():
        raise KernelError(f"TVM RPC upload failed: no library at {str(path)!r}")
    tvm = _tvm()
    _check_extras()
    from tvm import relax, rpc

    try:  # TVM's own client retries a refused connection every 5 s for a minute: probe first
        with socket.create_connection((tracker_host, int(tracker_port)), timeout=min(float(timeout_s), 10.0)):
            pass
    except OSError as err:
        raise KernelError(f"TVM RPC connect failed: no tracker listens on {tracker_host}:{tracker_port}: "
                          f"{err}") from err
    try:
        tracker = rpc.connect_tracker(tracker_host, int(tracker_port))
        remote = tracker.request(key, priority=1, session_timeout=float(timeout_s))
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM RPC connect failed: no session for key {key!r} from the tracker "
                          f"{tracker_host}:{tracker_port}: {_first_line(err)}") from err
    try:
        samples, output = _run_remote(tvm, relax, remote, path, input_array, number, repeats)
    finally:
        # The server serves one session at a time, and the tracker hands it out again only once this
        # one is closed, which happens when the last reference to it goes. TVM objects hold it in
        # reference cycles: without an explicit collection the next request waited for the session
        # timeout (60 s) instead of ~0.3 s.
        remote = None
        tracker.close()
        gc.collect()
    timing = summarize(samples, warmup=1, threads=threads, backend=BACKEND)
    return RemoteMeasurement(timing=timing, output=output)


def _run_remote(tvm, relax, remote, path: Path, input_array, number: int, repeats: int) -> tuple[list, np.ndarray]:
    """Upload, load and time the library in an open session; ``(samples_s, first output)``."""
    try:
        remote.upload(str(path))
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM RPC upload failed: {str(path)!r}: {_first_line(err)}") from err
    try:
        remote_mod = remote.load_module(path.name)
        dev = remote.cpu()
        vm = relax.VirtualMachine(remote_mod, dev)
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM RPC load failed: {path.name!r} on the remote: {_first_line(err)}") from err
    try:
        x = tvm.runtime.tensor(np.ascontiguousarray(input_array, dtype=np.float32), dev)
        vm.set_input("main", x)
        timer = vm.time_evaluator("invoke_stateful", dev, number=int(number), repeat=int(repeats))
        samples = [float(s) for s in timer("main").results]
        vm.invoke_stateful("main")
        out = vm.get_outputs("main")
        if not hasattr(out, "numpy"):
            out = out[0]
        return samples, out.numpy()
    except Exception as err:  # noqa: BLE001
        raise KernelError(f"TVM RPC run failed: {type(err).__name__}: {_first_line(err)}") from err

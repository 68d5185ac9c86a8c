"""Servers: every server command the README shows names the address it binds (never every interface),
and the servers hwnas starts itself bind 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import tally

README = Path(__file__).parents[2] / "README.md"
SERVERS = ("tvm.exec.rpc_tracker", "tvm.exec.rpc_server", "tvm.exec.rpc_proxy", "optuna-dashboard")


def _server_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        lines += [ln.split("#", 1)[0].strip() for ln in block.splitlines() if any(s in ln for s in SERVERS)]
    return [ln for ln in lines if ln]


def test_every_server_command_in_the_readme_binds_a_named_address_not_every_interface():
    lines = _server_lines()
    assert any("rpc_tracker" in ln for ln in lines) and any("rpc_server" in ln for ln in lines)
    for line in lines:
        host = re.search(r"--host\s+(\S+)", line)
        binds = host.group(1) if host else ("127.0.0.1" if line.startswith("optuna-dashboard") else None)
        broken = binds in (None, "0.0.0.0", "::", "[::]")
        tally("network", "readme server command", broken=broken)
        assert not broken, f"README server command binds {binds or 'every interface (no --host)'}: {line}"
    assert "What an RPC server exposes" in README.read_text(encoding="utf-8")


@pytest.mark.tvm
def test_the_loopback_rpc_that_hwnas_starts_listens_on_127_0_0_1_only():
    """The real tracker and server processes, asked by the OS which addresses they listen on."""
    import psutil

    from kernels.tvm.rpc import LoopbackRpc

    with LoopbackRpc(key="hwnas-hostile-bind") as rpc:
        listening = set()
        procs = [psutil.Process(p.pid) for p in (rpc.tracker, rpc.server)]
        for proc in procs + [c for p in procs for c in p.children(recursive=True)]:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.add(conn.laddr.ip)
    tally("network", "loopback rpc bind", broken=listening != {"127.0.0.1"})
    assert listening == {"127.0.0.1"}, listening

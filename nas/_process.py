"""Which processes share this machine's process table, and whether one of them is alive.

Contract: two processes may judge each other alive or dead by pid only when their
:func:`process_namespace` is equal: the same host name, the same boot (``/proc/sys/kernel/random/
boot_id``) and the same pid namespace (``/proc/self/ns/pid``). Containers that share a host name
(``--net=host``) but not a pid namespace therefore never take each other's pids for dead ones.
:func:`pid_alive` errs on the side of alive: another user's process, a pid it cannot check, or a
platform without ``os.kill(pid, 0)`` semantics (Windows) all count as alive.
"""

from __future__ import annotations

import hashlib
import os
import socket
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def process_namespace() -> str:
    """8 hex digits naming this host, boot and pid namespace (see the module docstring)."""
    parts = [socket.gethostname()]
    for probe in (lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                  lambda: os.readlink("/proc/self/ns/pid")):
        try:
            parts.append(probe())
        except OSError:
            parts.append("")
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists in this pid namespace (see the module docstring)."""
    if os.name == "nt" or pid <= 0:
        return True  # os.kill would signal the process (Windows) or our own group (pid 0)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True

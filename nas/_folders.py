"""Output folders that appear whole or not at all (``nas export``, ``nas profile``).

Contract:

- :func:`check_new_folder` refuses an ``--out`` that exists and is not an empty folder, before any work is
  done (nothing is written or removed by a refusal).
- :func:`staged_folder` hands out a temporary sibling folder to write into and renames it to ``out`` in
  one step when the block ends normally; on an error or an interrupt the temporary folder is removed, and
  so are the parent folders this call created (deepest first, while empty).
- A writer that is killed (SIGKILL, power loss) cannot clean up, so the temporary folder names its
  writer: ``.<out name>.<tag><host>-<pid>.<8 random chars>``, ``<host>`` being
  :func:`nas._process.process_namespace` (host name, boot and pid namespace) and ``<pid>`` the writer's
  process id. Each :func:`staged_folder` call
  first removes, with :func:`remove_stale_temporaries`, the temporaries of the same ``out`` whose writer
  ran on this host and is gone (``os.kill(pid, 0)`` finds no such process). It never removes its own
  process's, a live process's (also another user's: ``PermissionError`` counts as alive), another host's
  (its pid means nothing here), nor a folder whose name does not have that exact form (older temporaries
  without a pid, anything of the user's). A reused pid keeps a dead writer's temporary until that pid
  is gone too. On Windows (where ``os.kill(pid, 0)`` would signal the process) nothing is removed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nas._process import pid_alive, process_namespace


def check_new_folder(out: Path | str, error: type[Exception]) -> Path:
    """``out`` as a Path, or ``error`` (one line naming ``--out``) when it exists and is not an empty folder."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise error(f"--out {str(out)!r} exists and is not empty; choose a new folder or remove it")
    return out


@contextmanager
def staged_folder(out: Path, *, tag: str = "") -> Iterator[Path]:
    """A temporary sibling of ``out`` (named ``.<out name>.<tag><host>-<pid>.<random>``) that becomes ``out``
    when the block ends normally; ``out`` must be missing or empty (:func:`check_new_folder`). Temporaries
    of ``out`` left by dead writers go first. See the module docstring."""
    out = Path(out)
    if re.fullmatch(r"(?:[a-z]+-)?", tag) is None:
        raise ValueError(f"tag must be lowercase letters followed by '-' (or empty), got {tag!r}")
    created = _missing_parents(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{tag}{process_namespace()}-{os.getpid()}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty (checked before the work began)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # deepest first, while still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove the temporary folders of ``out`` (siblings named by :func:`staged_folder`) whose writer ran
    on this host and is dead; return them. Nothing else is touched (see the module docstring)."""
    out = Path(out)
    if os.name == "nt" or not out.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(?:[a-z]+-)?([0-9a-f]{{8}})-([0-9]{{1,10}})\.[a-z0-9_]{{8}}")
    removed, host = [], process_namespace()
    for entry in out.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match is None or match.group(1) != host or entry.is_symlink() or not entry.is_dir():
            continue
        pid = int(match.group(2))
        if pid == os.getpid() or pid_alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)  # another run may be removing it at the same time
        removed.append(entry)
    return removed


def _missing_parents(out: Path) -> list[Path]:
    missing, folder = [], out.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing

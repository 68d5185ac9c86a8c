"""Output folders that appear whole or not at all (``nas export``, ``nas profile``).

Contract: :func:`check_new_folder` refuses an ``--out`` that exists and is not an empty folder, before
any work is done. :func:`staged_folder` hands out a temporary sibling folder to write into and renames
it to ``out`` in one step when the block ends normally; on an error or an interrupt the temporary
folder is removed, and so are the parent folders this call created (deepest first, while empty).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def check_new_folder(out: Path | str, error: type[Exception]) -> Path:
    """``out`` as a Path, or ``error`` (one line naming ``--out``) when it exists and is not an empty folder."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise error(f"--out {str(out)!r} exists and is not empty; choose a new folder or remove it")
    return out


@contextmanager
def staged_folder(out: Path, *, tag: str = "") -> Iterator[Path]:
    """A temporary sibling of ``out`` (named ``.<out name>.<tag>...``) that becomes ``out`` when the block
    ends normally; ``out`` must be missing or empty (:func:`check_new_folder`). See the module docstring."""
    out = Path(out)
    created = _missing_parents(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{tag}", dir=out.parent))
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


def _missing_parents(out: Path) -> list[Path]:
    missing, folder = [], out.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing

"""The hostile-input suite's harness: the promise every refusal must keep, checked in one place.

The promise (README, DESIGN.md convention 8): bad input gets one line on stderr naming what is wrong
and what would be right, exit code 2 from the CLI, no traceback, and nothing written or changed.

* :func:`refuse_cli` runs ``nas ARGV`` in this process (``nas.cli.main``) and checks the promise,
  with every folder in ``watch`` unchanged (names, sizes and modification times of every file).
* :func:`refuse_load` calls a loader and checks that it raises a one-line ``NASError``.
* Every case is tallied by command or loader; with ``HWNAS_HOSTILE_REPORT=FILE`` the session writes
  the tally as JSON (``experiments/benchmarks/hostile_inputs.py`` reads it).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pytest

from search_spaces import NASError

TALLY: dict[str, dict[str, int]] = defaultdict(lambda: {"cases": 0, "broken": 0})


def tally(kind: str, name: str, *, broken: bool, examples: int = 1) -> None:
    """Count ``examples`` cases of ``kind`` (cli, loader, fault) for ``name``; ``broken`` ones failed."""
    entry = TALLY[f"{kind}:{name}"]
    entry["cases"] += examples
    entry["broken"] += examples if broken else 0


def snapshot(folders: Iterable[Path]) -> dict[str, tuple]:
    """Every path under ``folders`` with (is_dir, size, mtime_ns): what "nothing written" compares."""
    seen = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            seen[str(folder)] = ("missing",)
            continue
        for path in [folder, *folder.rglob("*")]:
            st = path.lstat()
            seen[str(path)] = (path.is_dir(), 0 if path.is_dir() else st.st_size, st.st_mtime_ns)
    return seen


def check_one_line(message: str) -> str | None:
    """Why ``message`` breaks the one-line promise, or None."""
    text = message.strip()
    if not text:
        return "no message"
    if "Traceback" in text:
        return "a traceback"
    if len(text.splitlines()) != 1:
        return f"{len(text.splitlines())} lines"
    return None


def refuse_cli(capsys, argv: Sequence[str], *, watch: Iterable[Path] = (), contains: str | None = None) -> str:
    """Run ``nas ARGV`` and assert the promise; returns the error line."""
    from nas.cli import main

    watch = list(watch)
    before = snapshot(watch)
    capsys.readouterr()
    problem = None
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    except BaseException as err:  # noqa: BLE001 - an escaped exception is the broken promise itself
        tally("cli", argv[0], broken=True)
        raise AssertionError(f"nas {' '.join(argv)} raised {type(err).__name__}: {err}") from err
    err_text = capsys.readouterr().err
    if code != 2:
        problem = f"exit code {code}, expected 2 (stderr: {err_text.strip()[:300]!r})"
    else:
        why = check_one_line(err_text)
        if why:
            problem = f"stderr has {why}: {err_text[:500]!r}"
        elif snapshot(watch) != before:
            problem = "files changed under " + ", ".join(map(str, watch))
        elif contains is not None and contains not in err_text:
            problem = f"the error does not mention {contains!r}: {err_text.strip()!r}"
    tally("cli", argv[0], broken=problem is not None)
    assert problem is None, f"nas {' '.join(map(str, argv))}: {problem}"
    return err_text.strip()


def refuse_load(name: str, load: Callable[[], object], *, contains: str | None = None) -> str:
    """Call ``load`` and assert it raises a one-line ``NASError``; returns the message."""
    problem, message = None, ""
    try:
        load()
        problem = "accepted the input"
    except NASError as err:
        message = str(err)
        why = check_one_line(message)
        if why:
            problem = f"message has {why}: {message[:300]!r}"
        elif contains is not None and contains not in message:
            problem = f"the error does not mention {contains!r}: {message!r}"
    except Exception as err:  # noqa: BLE001
        problem = f"raised {type(err).__name__} (not a NASError): {err}"
    tally("loader", name, broken=problem is not None)
    assert problem is None, f"{name}: {problem}"
    return message


def pytest_sessionfinish(session, exitstatus):
    report = os.environ.get("HWNAS_HOSTILE_REPORT")
    if report and TALLY:
        Path(report).write_text(json.dumps(dict(sorted(TALLY.items())), indent=1) + "\n", encoding="utf-8")


@pytest.fixture
def hostile_cli(capsys):
    """``hostile_cli(argv, watch=..., contains=...)``: :func:`refuse_cli` bound to this test's capsys."""
    return lambda argv, **kw: refuse_cli(capsys, argv, **kw)

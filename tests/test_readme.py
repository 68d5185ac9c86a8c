"""The README's commands are real: every `nas ...` line in its bash blocks parses with the CLI's own
parser, the files and make targets it names exist, and the cheap commands run and succeed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from nas.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Commands that finish in seconds and write nothing outside a temporary folder: run for real.
CHEAP = {"spaces", "devices", "sample", "describe"}


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands() -> list[list[str]]:
    """Every command line of the README's bash blocks (continuations joined, comments dropped)."""
    commands = []
    for block in _bash_blocks(README.read_text(encoding="utf-8")):
        pending = ""
        for line in block.replace("\\\n", " ").splitlines():
            pending = f"{pending}\n{line}" if pending else line
            try:
                words = shlex.split(pending, comments=True)
            except ValueError:  # a quoted argument goes on over the next line
                continue
            pending = ""
            if words:
                commands.append(words)
        assert not pending, f"unterminated quote in a README command: {pending!r}"
    return commands


def _nas_args(words: list[str]) -> list[str] | None:
    """The arguments of a `nas` invocation (``.venv/bin/nas``, ``nas``, ``-m nas`` under torchrun)."""
    for i, word in enumerate(words):
        if word.endswith("bin/nas") or word == "nas":
            if i == 0 or words[i - 1] == "-m":
                args = words[i + 1:]
                return args[:args.index(">")] if ">" in args else args  # a shell redirection ends them
    return None


NAS_COMMANDS = [args for args in map(_nas_args, _commands()) if args is not None]


def test_the_readme_shows_the_two_setup_commands_and_both_are_make_targets():
    commands = [" ".join(c) for c in _commands()]
    assert "make demo" in commands and "make test" in commands
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_has_nas_commands_for_every_stage():
    used = {args[0] for args in NAS_COMMANDS if args}
    assert {"run", "train", "profile", "tune-space", "search", "pareto", "export", "worker"} <= used, used


@pytest.mark.parametrize("args", NAS_COMMANDS, ids=[" ".join(a)[:60] for a in NAS_COMMANDS])
def test_every_nas_command_in_the_readme_parses(args):
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"`nas {' '.join(args)}` does not parse (exit {exc.code})")


@pytest.mark.parametrize("args", NAS_COMMANDS, ids=[" ".join(a)[:60] for a in NAS_COMMANDS])
def test_files_named_by_readme_commands_exist(args):
    for word in args:
        word = word.lstrip("@")
        if word.startswith("experiments/") and "*" not in word:
            assert (ROOT / word).exists(), word


CHEAP_COMMANDS = [a for a in NAS_COMMANDS if a and a[0] in CHEAP and not any(d in a for d in ("h100", "a100"))
                  and not any(w.startswith("exports/") for w in a)]  # reads what an export above it wrote


@pytest.mark.parametrize("args", CHEAP_COMMANDS, ids=[" ".join(a)[:60] for a in CHEAP_COMMANDS])
def test_cheap_readme_commands_run(args, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(args) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip()

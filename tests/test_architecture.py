"""The rooms of DESIGN.md: import rules (import-linter) and a fast, torch-free search_spaces."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is not installed; install hwnas[dev]"
    run = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "broken" in run.stdout and "0 broken" in run.stdout, run.stdout


def test_search_spaces_and_cli_describe_do_not_import_torch():
    code = (
        "import sys, nas, search_spaces, hw_profiles, nas.cli._main, nas.report.describe; "
        "bad = [m for m in ('torch', 'tvm', 'onnx') if m in sys.modules]; assert not bad, bad"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def _contracts() -> list[dict]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_room_and_shared_module_of_nas_is_under_a_contract():
    """A new subpackage of ``nas`` must be placed in the layers; a new top-level module must be in
    the "nothing imports nas.testing" contract (import-linter does not see what is not listed)."""
    contracts = _contracts()
    layers = next(c for c in contracts if c["type"] == "layers")
    forbidden = next(c for c in contracts if c.get("forbidden_modules") == ["nas.testing"])
    rooms = {p.name for p in (ROOT / "nas").iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in (ROOT / "nas").glob("_*.py")} - {"__init__", "__main__"}
    assert rooms - {"testing"} == set(layers["layers"]), sorted(rooms)
    listed = {m.removeprefix("nas.") for m in forbidden["source_modules"]}
    assert listed == (rooms - {"testing"}) | modules, sorted(listed ^ ((rooms - {"testing"}) | modules))

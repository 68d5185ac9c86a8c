"""The ``nas`` command line, run in-process: output formats, and one-line errors with exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hw_profiles import analytic
from nas.cli import main
from search_spaces import get_space

REPO_ROOT = Path(__file__).resolve().parents[3]


def run(capsys, *argv):
    """``nas ARGV...`` in-process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def describe_json(capsys, space, arch_text):
    code, out, err = run(capsys, "describe", space, "--arch", arch_text, "--json")
    assert (code, err) == (0, "")
    return json.loads(out)


def largest_ofa_dict(**changes):
    layout = get_space("ofa_mbv3").to_ofa_dict(get_space("ofa_mbv3").largest())
    return {**layout, **changes}


# --------------------------------------------------------------------- spaces
def test_spaces_lists_both_spaces(capsys):
    code, out, err = run(capsys, "spaces")
    assert (code, err) == (0, "")
    names = [line.split("\t")[0] for line in out.splitlines()]
    assert {"ofa_mbv3", "tiny_mbv3"} <= set(names)
    assert "46 settings" in out  # ofa_mbv3: 20 ks + 20 e + 5 d + r


# --------------------------------------------------------------------- sample
def sample_lines(capsys, *extra):
    code, out, err = run(capsys, "sample", "ofa_mbv3", *extra)
    assert (code, err) == (0, "")
    return out.splitlines()


def test_sample_prints_reproducible_json_lines(capsys):
    lines = sample_lines(capsys, "-n", "5", "--seed", "1")
    assert len(lines) == 5
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert len(set(lines)) == 5
    assert sample_lines(capsys, "-n", "5", "--seed", "1") == lines
    assert sample_lines(capsys, "-n", "5", "--seed", "2") != lines


def test_sampled_lines_are_accepted_by_describe(capsys):
    space = get_space("ofa_mbv3")
    for line in sample_lines(capsys, "-n", "5", "--seed", "1"):
        info = describe_json(capsys, "ofa_mbv3", line)
        assert info["arch_id"] == space.parse(json.loads(line)).arch_id


def test_sample_default_is_one_line(capsys):
    assert len(sample_lines(capsys)) == 1


# ------------------------------------------------------------------- describe
def test_describe_json_from_file_matches_the_analytic_model(capsys, tmp_path):
    space = get_space("ofa_mbv3")
    arch = space.sample(np.random.default_rng(3))
    path = tmp_path / "arch.json"
    path.write_text(arch.to_json(), encoding="utf-8")
    info = describe_json(capsys, "ofa_mbv3", f"@{path}")
    rows = space.layers(arch)
    assert type(info["macs"]) is int and type(info["params"]) is int
    assert info["macs"] == analytic.macs(rows)
    assert info["params"] == analytic.params(rows)
    assert info["arch_id"] == arch.arch_id
    assert info["resolution"] == [arch["r"], arch["r"]]
    assert info["peak_activation_bytes"] == {"fp32": analytic.peak_activation_bytes(rows, 4),
                                             "int8": analytic.peak_activation_bytes(rows, 1)}
    assert len(info["layers"]) == len(rows)
    assert [row["macs"] for row in info["layers"]] == [analytic.layer_macs(row) for row in rows]


def test_describe_text_report(capsys):
    space = get_space("tiny_mbv3")
    arch = space.largest()
    code, out, err = run(capsys, "describe", "tiny_mbv3", "--arch", arch.to_json())
    assert (code, err) == (0, "")
    rows = space.layers(arch)
    for fragment in (arch.arch_id, "macs", "params", "resolution", "32x32", "fp32", "int8",
                     f"{analytic.macs(rows):,}", f"{analytic.params(rows):,}"):
        assert fragment in out
    header = next(i for i, line in enumerate(out.splitlines()) if line.split()[:3] == ["#", "block", "op"])
    table = out.splitlines()[header + 1:]
    assert len(table) == len(rows)
    assert table[0].split()[:3] == ["0", "stem", "conv"]
    assert table[-1].split()[:3] == [str(len(rows) - 1), "classifier", "linear"]


def test_describe_accepts_an_inline_ofa_dict(capsys):
    space = get_space("ofa_mbv3")
    info = describe_json(capsys, "ofa_mbv3", json.dumps(largest_ofa_dict(r=[224], wid=None)))
    assert info["arch_id"] == space.largest().arch_id
    assert info["macs"] == analytic.macs(space.layers(space.largest()))


# ----------------------------------------------------------------- user errors
ERRORS = {
    "unknown space": (["describe", "mbv9", "--arch", "{}"], ["unknown space 'mbv9'", "ofa_mbv3", "tiny_mbv3"]),
    "unknown space (sample)": (["sample", "mbv9"], ["unknown space 'mbv9'", "ofa_mbv3, tiny_mbv3"]),
    "malformed JSON": (["describe", "ofa_mbv3", "--arch", "{bad"], ["--arch is not valid JSON", "line 1 column 2"]),
    "value not in choices": (["describe", "ofa_mbv3", "--arch", json.dumps(largest_ofa_dict(ks=[4] + [7] * 19))],
                             ["ks_0=4", "[3, 5, 7]"]),
    "wrong list length": (["describe", "ofa_mbv3", "--arch", json.dumps(largest_ofa_dict(ks=[7] * 19))],
                          ["'ks'", "list of 20", "got a list of 19"]),
    "unknown flat key": (["describe", "tiny_mbv3", "--arch", '{"depth": 3}'], ["unknown setting(s) ['depth']"]),
    "missing @file": (["describe", "ofa_mbv3", "--arch", "@{tmp}/missing.json"],
                      ["cannot read --arch file", "missing.json", "No such file"]),
    "JSON array": (["describe", "ofa_mbv3", "--arch", "[3, 5, 7]"], ["must be a JSON object", "got list"]),
    "JSON array in file": (["describe", "ofa_mbv3", "--arch", "@{tmp}/array.json"],
                           ["--arch file", "array.json", "must be a JSON object"]),
}


@pytest.mark.parametrize(("argv", "fragments"), ERRORS.values(), ids=ERRORS.keys())
def test_user_errors_print_one_line_and_exit_2(capsys, tmp_path, argv, fragments):
    (tmp_path / "array.json").write_text("[1, 2]", encoding="utf-8")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line
    assert err.startswith(f"nas {argv[0]}: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b"[" * 100_000], ids=["not-utf8", "deeply-nested"])
def test_unreadable_arch_file_is_a_one_line_error(capsys, tmp_path, content):
    path = tmp_path / "arch.json"
    path.write_bytes(content)
    code, _, err = run(capsys, "describe", "ofa_mbv3", "--arch", f"@{path}")
    assert code == 2 and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "ofa_mbv3", "-n", "0"],
        ["sample", "ofa_mbv3", "-n", "two"],
        ["sample", "ofa_mbv3", "--seed", "-1"],
        ["describe", "ofa_mbv3"],  # --arch is required
        ["frobnicate"],
        [],
    ],
)
def test_argparse_errors_exit_2(capsys, argv):
    try:  # main returns 2 after a usage error; `describe`'s own check still exits through argparse
        code = main(argv)
    except SystemExit as info:
        code = info.code
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("nas"), err  # one line, no usage block


def test_module_entry_point_reports_bad_json_without_traceback():
    result = subprocess.run([sys.executable, "-m", "nas", "describe", "ofa_mbv3", "--arch", "{bad"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "not valid JSON" in result.stderr

"""Hostile numbers (issue 18, part 5): every command's flags and every config key have a range; NaN, inf,
absurd and malformed values, missing and unknown flags are refused with one line and exit code 2, and
nothing is written (the harness in conftest.py checks the promise).

Each refused case also carries something else that would fail fast (an unknown device, space or data set,
a missing config file): were the value accepted, the run would stop on that instead, with a message that
does not hold the expected ``FLAG must be ...`` phrase.
"""

from __future__ import annotations

import json

import pytest

HUGE = "1" * 5000  # beyond Python's 4300-digit int-string conversion limit
OUT = "{out}"  # replaced by a folder under tmp_path that must not appear
SEED_RANGE = "an integer >= 0 and <= 4294967295"


def _flag_cases(command: str, base: list[str], flag: str, values: list[str], expected: str) -> list:
    """One case per value: ``nas COMMAND BASE... FLAG=VALUE`` refused with ``FLAG must be EXPECTED``."""
    return [pytest.param([*base, f"{flag}={value}"], f"{flag} must be {expected}",
                         id=f"{command}-{flag.lstrip('-')}={value[:12]}") for value in values]


INTS = ["abc", "1.5", "nan", "inf", HUGE]  # never an integer
FLOATS = ["abc", "nan", "inf", "-inf", HUGE]  # never a finite number (float(HUGE) is inf)

PROFILE = ["profile", "--device", "nope", "--space", "tiny_mbv3", "--out", OUT]
SEARCH = ["search", "{tmp}/missing.toml"]
WORKER = ["worker", "--job", "j", "--storage", "redis://x"]
SAMPLE = ["sample", "nope"]
TRAIN = ["train", "--out", OUT, "--data", "nope"]
EXPORT = ["export", "--space", "tiny_mbv3", "--arch", "{bad", "--out", OUT]
TUNE = ["tune-space", "nope", "--device", "host-cpu"]

FLAG_CASES = [
    *_flag_cases("profile", PROFILE, "--samples", [*INTS, "9", "0", "-5", "1000001"],
                 "an integer >= 10 and <= 1000000"),
    *_flag_cases("profile", PROFILE, "--threads", [*INTS, "0", "1025"], "an integer >= 1 and <= 1024"),
    *_flag_cases("profile", PROFILE, "--repeats", [*INTS, "0", "10001"], "an integer >= 1 and <= 10000"),
    *_flag_cases("profile", PROFILE, "--coverage", [*INTS, "-1", "1000001"], "an integer >= 0 and <= 1000000"),
    *_flag_cases("profile", PROFILE, "--seed", [*INTS, "-1", "4294967296"], SEED_RANGE),
    *_flag_cases("profile", PROFILE, "--chunk", [*INTS, "0", "10001"], "an integer >= 1 and <= 10000"),
    *_flag_cases("profile", PROFILE, "--interval", [*FLOATS, "0.49", "1", "0.995"],
                 ">= 0.5 and <= 0.99"),
    *_flag_cases("profile", PROFILE, "--rpc-tracker", ["host:0", "host:65536", "host:abc", "no-port", ":9190",
                                                       f"host:{HUGE}"], "HOST:PORT with a port in 1..65535"),
    *_flag_cases("search", SEARCH, "--budget", [*INTS, "0", "-1", "1000001"], "an integer >= 1 and <= 1000000"),
    *_flag_cases("search", SEARCH, "--wait-timeout", [*FLOATS, "-1", "1e7"], ">= 0 and <= 1000000"),
    *_flag_cases("worker", WORKER, "--idle-exit", [*FLOATS, "-1", "1e7"], ">= 0 and <= 1000000"),
    *_flag_cases("sample", SAMPLE, "-n", [*INTS, "0", "-1", "1000001"], "an integer >= 1 and <= 1000000"),
    *_flag_cases("sample", SAMPLE, "--seed", [*INTS, "-1", "4294967296"], SEED_RANGE),
    *_flag_cases("train", TRAIN, "--epochs", [*INTS, "0", "-1", "100001"], "an integer >= 1 and <= 100000"),
    *_flag_cases("train", TRAIN, "--batch-size", [*INTS, "0", "1000001"], "an integer >= 1 and <= 1000000"),
    *_flag_cases("train", TRAIN, "--lr", [*FLOATS, "0", "-0.1", "1e3", "1e999"], "> 0 and <= 100"),
    *_flag_cases("train", TRAIN, "--seed", [*INTS, "-1", "4294967296"], SEED_RANGE),
    *_flag_cases("train", TRAIN, "--steps-per-epoch", [*INTS, "-1", "10000001"],
                 "an integer >= 0 and <= 10000000"),
    *_flag_cases("export", EXPORT, "--trial", [*INTS, "-1", "1000000001"], "an integer >= 0 and <= 1000000000"),
    *_flag_cases("export", EXPORT, "--repeats", [*INTS, "0", "10001"], "an integer >= 1 and <= 10000"),
    *_flag_cases("export", EXPORT, "--tune-minutes", [*FLOATS, "1e6"], ">= 0 and <= 10080"),
    *_flag_cases("export", EXPORT, "--calibration-samples", [*INTS, "0", "100001"],
                 "an integer >= 1 and <= 100000"),
    *_flag_cases("export", ["export", "--space", "tiny_mbv3", "--arch", "{arch}", "--format", "bogus", "--out", OUT],
                 "--rpc-tracker", ["host:0", "host:65536", "no-port"], "HOST:PORT with a port in 1..65535"),
    *_flag_cases("tune-space", TUNE, "--minutes", ["abc", "inf", "-inf", "1e6", HUGE], "> 0 and <= 10080"),
    *_flag_cases("tune-space", [*TUNE, "--minutes=1"], "--check", [*INTS, "-1", "10001"],
                 "an integer >= 0 and <= 10000"),
    *_flag_cases("tune-space", [*TUNE, "--minutes=1"], "--seed", [*INTS, "-1", "4294967296"], SEED_RANGE),
    *_flag_cases("tune-space", [*TUNE, "--minutes=1"], "--max-trials-per-task", [*INTS, "0", "1000001"],
                 "an integer >= 1 and <= 1000000"),
]

ARCH_HUGE = '{"r": ' + HUGE + "}"
USAGE_CASES = [
    pytest.param(["frobnicate"], "nas: error: argument COMMAND: invalid choice", id="nas-unknown-command"),
    pytest.param(["--bogus"], "nas: error: ", id="nas-unknown-flag"),
    pytest.param(["spaces", "--bogus"], "unrecognized arguments: --bogus", id="spaces-unknown-flag"),
    pytest.param(["spaces", "extra"], "unrecognized arguments: extra", id="spaces-extra-argument"),
    pytest.param(["describe"], "give a space and --arch", id="describe-nothing"),
    pytest.param(["describe", "tiny_mbv3"], "required: --arch", id="describe-missing-arch"),
    pytest.param(["describe", "tiny_mbv3", "--arch", "{}", "--bogus"], "unrecognized arguments: --bogus",
                 id="describe-unknown-flag"),
    pytest.param(["describe", "tiny_mbv3", "--arch", ARCH_HUGE], "integer too long", id="describe-arch-huge-int"),
    pytest.param(["describe", "tiny_mbv3", "--arch", '{"r": NaN}'], "NaN", id="describe-arch-nan"),
    pytest.param(["describe", "tiny_mbv3", "--arch", '{"r": -Infinity}'], "-Infinity", id="describe-arch-inf"),
    pytest.param(["describe", "tiny_mbv3", "--arch", '{"r": 1e999}'], "1e999", id="describe-arch-1e999"),
    pytest.param(["devices", "--bogus"], "unrecognized arguments: --bogus", id="devices-unknown-flag"),
    pytest.param(["devices", "--json", "extra"], "unrecognized arguments: extra", id="devices-extra-argument"),
    pytest.param(["profile", "--space", "tiny_mbv3", "--out", OUT], "required: --device", id="profile-missing-device"),
    pytest.param([*PROFILE, "--samples"], "expected one argument", id="profile-samples-without-value"),
    pytest.param([*PROFILE, "--bogus"], "unrecognized arguments: --bogus", id="profile-unknown-flag"),
    pytest.param(["search"], "required: config", id="search-missing-config"),
    pytest.param([*SEARCH, "--bogus"], "unrecognized arguments: --bogus", id="search-unknown-flag"),
    pytest.param(["run", "{tmp}/missing.toml"], "required: --out", id="run-missing-out"),
    pytest.param(["run", "{tmp}/missing.toml", "--out", OUT, "--bogus"], "unrecognized arguments: --bogus",
                 id="run-unknown-flag"),
    pytest.param(["worker", "--storage", "redis://x"], "required: --job", id="worker-missing-job"),
    pytest.param([*WORKER, "--bogus"], "unrecognized arguments: --bogus", id="worker-unknown-flag"),
    pytest.param(["jobs", "--bogus"], "unrecognized arguments: --bogus", id="jobs-unknown-flag"),
    pytest.param(["jobs", "--storage"], "expected one argument", id="jobs-storage-without-value"),
    pytest.param(["pareto"], "required: job", id="pareto-missing-job"),
    pytest.param(["pareto", "j", "--format", "xml"], "invalid choice: 'xml'", id="pareto-bad-format"),
    pytest.param(["pareto", "j", "--bogus"], "unrecognized arguments: --bogus", id="pareto-unknown-flag"),
    pytest.param(["sample"], "required: space", id="sample-missing-space"),
    pytest.param([*SAMPLE, "--bogus"], "unrecognized arguments: --bogus", id="sample-unknown-flag"),
    pytest.param(["train"], "required: --out", id="train-missing-out"),
    pytest.param([*TRAIN, "--learning-rate", "0.1"], "unrecognized arguments: --learning-rate",
                 id="train-unknown-flag"),
    pytest.param([*TRAIN, "a.toml", "b.toml"], "unrecognized arguments: b.toml", id="train-two-configs"),
    pytest.param(["eval", "--checkpoint", "{tmp}/missing"], "required: --arch", id="eval-missing-arch"),
    pytest.param(["eval", "--checkpoint", "{tmp}/missing", "--arch", ARCH_HUGE], "integer too long",
                 id="eval-arch-huge-int"),
    pytest.param(["eval", "--checkpoint", "{tmp}/missing", "--arch", '{"r": NaN}'], "NaN", id="eval-arch-nan"),
    pytest.param(["export", "--space", "tiny_mbv3", "--arch", "{}"], "required: --out", id="export-missing-out"),
    pytest.param(["export", "--space", "tiny_mbv3", "--arch", ARCH_HUGE, "--out", OUT], "integer too long",
                 id="export-arch-huge-int"),
    pytest.param([*EXPORT, "--bogus"], "unrecognized arguments: --bogus", id="export-unknown-flag"),
    pytest.param(["tune-space", "nope", "--device", "host-cpu"], "required: --minutes",
                 id="tune-space-missing-minutes"),
    pytest.param([*TUNE, "--minutes", "1", "--bogus"], "unrecognized arguments: --bogus", id="tune-space-unknown-flag"),
]


def _fill(argv: list[str], tmp_path) -> list[str]:
    from search_spaces import get_space

    arch = get_space("tiny_mbv3").smallest().to_json()
    return [a.replace("{out}", str(tmp_path / "out")).replace("{tmp}", str(tmp_path)).replace("{arch}", arch)
            for a in argv]


@pytest.mark.parametrize(("argv", "contains"), FLAG_CASES + USAGE_CASES)
def test_a_bad_flag_is_one_line(hostile_cli, tmp_path, argv, contains):
    argv = _fill(argv, tmp_path)
    line = hostile_cli(argv, watch=[tmp_path], contains=contains)
    command = argv[0] if not argv[0].startswith("-") and argv[0] != "frobnicate" else None
    assert line.startswith(f"nas {command}: error: " if command else "nas: error: "), line
    assert len(line) < 400, line  # a 5000-digit value is shown cut short


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["sample", "-h"], ["tune-space", "--help"]],
                         ids=["nas", "train", "sample", "tune-space"])
def test_help_still_prints_the_usage_and_returns_0(capsys, argv):
    from nas.cli import main

    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: nas") and captured.err == ""


# ---------------------------------------------------------------- config files
def _refuse_config(hostile_cli, tmp_path, text: str, command: str, *flags: str, expected: str) -> None:
    """``nas COMMAND bad.toml FLAGS...`` with ``text`` in bad.toml is refused with one line that names the file
    and says ``expected``."""
    config = tmp_path / "bad.toml"
    config.write_text(text)
    line = hostile_cli([command, str(config), *flags], watch=[tmp_path], contains=expected)
    assert str(config) in line, line


def _train_cases() -> list:
    """(id, [train] lines, expected phrase); each config also names an unknown data set (the error were the
    value accepted)."""
    cases = [
        ("lr-nan", "lr = nan", "lr must be > 0 and <= 100, got nan"),
        ("lr-inf", "lr = inf", "lr must be > 0 and <= 100, got inf"),
        ("lr-minus-inf", "lr = -inf", "lr must be > 0 and <= 100"),
        ("lr-zero", "lr = 0", "lr must be > 0 and <= 100"),
        ("lr-negative", "lr = -1", "lr must be > 0 and <= 100"),
        ("lr-absurd", "lr = 1e9", "lr must be > 0 and <= 100"),
        ("momentum-nan", "momentum = nan", "momentum must be >= 0 and < 1"),
        ("momentum-one", "momentum = 1.0", "momentum must be >= 0 and < 1"),
        ("weight-decay-nan", "weight_decay = nan", "weight_decay must be >= 0 and <= 1"),
        ("weight-decay-negative", "weight_decay = -1e-4", "weight_decay must be >= 0 and <= 1"),
        ("weight-decay-absurd", "weight_decay = 5.0", "weight_decay must be >= 0 and <= 1"),
        ("label-smoothing-5", "label_smoothing = 5.0", "label_smoothing must be >= 0 and < 1"),
        ("label-smoothing-1", "label_smoothing = 1.0", "label_smoothing must be >= 0 and < 1"),
        ("label-smoothing-negative", "label_smoothing = -0.1", "label_smoothing must be >= 0 and < 1"),
        ("label-smoothing-nan", "label_smoothing = nan", "label_smoothing must be >= 0 and < 1"),
        ("kd-ratio-negative", 'strategy = "ps"\nkd_ratio = -1.0', "kd_ratio must be >= 0 and <= 1000"),
        ("kd-ratio-nan", 'strategy = "ps"\nkd_ratio = nan', "kd_ratio must be >= 0 and <= 1000"),
        ("kd-ratio-inf", 'strategy = "ps"\nkd_ratio = inf', "kd_ratio must be >= 0 and <= 1000"),
        ("stages-empty", 'strategy = "ps"\nps_fractions = []', "ps_fractions must be 4 numbers >= 0 summing to 1"),
        ("stages-one", "ps_fractions = [1.0]", "ps_fractions must be 4 numbers"),
        ("stages-negative", "ps_fractions = [0.5, 0.5, 0.5, -0.5]", "ps_fractions must be 4 numbers"),
        ("stages-nan", "ps_fractions = [nan, 0.5, 0.25, 0.25]", "ps_fractions must be 4 numbers"),
        ("stages-strings", 'ps_fractions = ["a", "b", "c", "d"]', "ps_fractions must be 4 numbers"),
        ("stages-sum", "ps_fractions = [0.1, 0.1, 0.1, 0.1]", "ps_fractions must be 4 numbers"),
        ("epochs-zero", "epochs = 0", "epochs must be an integer >= 1 and <= 100000, got 0"),
        ("epochs-absurd", "epochs = 1_000_000_000", "epochs must be an integer >= 1 and <= 100000"),
        ("epochs-int64", "epochs = 9223372036854775807", "epochs must be an integer >= 1 and <= 100000"),
        ("batch-size-zero", "batch_size = 0", "batch_size must be an integer >= 1 and <= 1000000"),
        ("batch-size-absurd", "batch_size = 1_000_000_000", "batch_size must be an integer >= 1 and <= 1000000"),
        ("steps-negative", "steps_per_epoch = -1", "steps_per_epoch must be an integer >= 0 and <= 10000000"),
        ("steps-absurd", "steps_per_epoch = 1_000_000_000", "steps_per_epoch must be an integer >= 0"),
        ("n-random-absurd", "n_random = 1000", "n_random must be an integer >= 0 and <= 100"),
        ("val-fraction-one", "val_fraction = 1.0", "val_fraction must be > 0 and < 1"),
        ("val-fraction-nan", "val_fraction = nan", "val_fraction must be > 0 and < 1"),
        ("image-size-absurd", "image_size = 1_000_000", "image_size must be an integer >= 1 and <= 4096"),
        ("calib-batches-absurd", "calib_batches = 1_000_000_000", "calib_batches must be an integer >= 1"),
        ("eval-batch-size-zero", "eval_batch_size = 0", "eval_batch_size must be an integer >= 1"),
        ("seed-negative", "seed = -1", f"seed must be {SEED_RANGE}"),
        ("seed-absurd", "seed = 1_099_511_627_776", f"seed must be {SEED_RANGE}"),
    ]
    return [pytest.param(lines, expected, id=f"train-{name}") for name, lines, expected in cases]


@pytest.mark.parametrize(("lines", "expected"), _train_cases())
def test_a_bad_train_config_is_one_line_naming_file_key_and_range(hostile_cli, tmp_path, lines, expected):
    _refuse_config(hostile_cli, tmp_path, f'[train]\ndata = "nope"\n{lines}\n', "train", "--out", str(tmp_path / "out"),
                   expected=expected)


def test_train_table_that_is_not_a_table(hostile_cli, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("train = 5\n")
    hostile_cli(["train", str(config), "--out", str(tmp_path / "out")], watch=[tmp_path],
                contains="[train] must be a table")


SEARCH_CONFIG = """\
[search]
space = "tiny_mbv3"
storage = "sqlite:///{tmp}/nas.db"
{search}
[[objectives]]
name = "m"
metric = "flops"
{extra}
"""


@pytest.mark.parametrize(("search", "extra", "expected"), [
    pytest.param("budget = 0", "", "budget must be an integer >= 1 and <= 1000000, got 0", id="search-budget-zero"),
    pytest.param("budget = 1_000_000_000", "", "budget must be an integer >= 1 and <= 1000000",
                 id="search-budget-absurd"),
    pytest.param("seed = -1", "", f"seed must be {SEED_RANGE}", id="search-seed-negative"),
    pytest.param("seed = 1_099_511_627_776", "", f"seed must be {SEED_RANGE}", id="search-seed-absurd"),
    pytest.param("batch_size = -1", "", "batch_size must be an integer >= 0 and <= 10000", id="search-batch-negative"),
    pytest.param("batch_size = 1_000_000", "", "batch_size must be an integer >= 0 and <= 10000",
                 id="search-batch-absurd"),
    pytest.param("", '[[constraints]]\nmetric = "macs"\nop = "<="\nbound = nan', "bound must be a finite number",
                 id="search-constraint-bound-nan"),
    pytest.param("", '[[constraints]]\nmetric = "macs"\nop = "<="\nbound = -inf', "bound must be a finite number",
                 id="search-constraint-bound-inf"),
    pytest.param("", "[quantization]\nsamples = 0", "samples must be an integer >= 1 and <= 100000",
                 id="search-quantization-samples-zero"),
])
def test_a_bad_search_config_is_one_line_naming_file_key_and_range(hostile_cli, tmp_path, search, extra, expected):
    _refuse_config(hostile_cli, tmp_path, SEARCH_CONFIG.format(tmp=tmp_path, search=search, extra=extra), "search",
                   "--no-progress", expected=expected)


@pytest.mark.parametrize(("table", "lines", "expected"), [
    pytest.param("train", "lr = nan", "[train]: lr must be > 0 and <= 100, got nan", id="run-train-lr-nan"),
    pytest.param("train", "label_smoothing = 5.0", "[train]: label_smoothing must be >= 0 and < 1",
                 id="run-train-label-smoothing"),
    pytest.param("train", 'strategy = "ps"\nkd_ratio = -0.5', "[train]: kd_ratio must be >= 0",
                 id="run-train-kd-ratio-negative"),
    pytest.param("train", "ps_fractions = []", "[train]: ps_fractions must be 4 numbers", id="run-train-stages-empty"),
    pytest.param("profile", "repeats = 0", "[profile]: repeats must be an integer >= 1 and <= 10000",
                 id="run-profile-repeats-zero"),
    pytest.param("profile", "repeats = 1_000_000_000", "[profile]: repeats must be an integer >= 1 and <= 10000",
                 id="run-profile-repeats-absurd"),
    pytest.param("profile", "samples = 1_000_000_000", "[profile]: samples must be an integer >= 10 and <= 1000000",
                 id="run-profile-samples-absurd"),
    pytest.param("profile", "warmup = -1", "[profile]: warmup must be an integer >= 0 and <= 10000",
                 id="run-profile-warmup-negative"),
    pytest.param("profile", "threads = 100000", "[profile]: threads must be an integer >= 1 and <= 1024",
                 id="run-profile-threads-absurd"),
    pytest.param("profile", "seed = -1", f"[profile]: seed must be {SEED_RANGE}", id="run-profile-seed-negative"),
    pytest.param("profile", 'rpc_tracker = "host:0"', "[profile]: rpc_tracker must be HOST:PORT with a port in "
                 "1..65535", id="run-profile-rpc-tracker-port-zero"),
    pytest.param("profile", f'rpc_tracker = "host:{HUGE}"', "[profile]: rpc_tracker must be HOST:PORT",
                 id="run-profile-rpc-tracker-huge-port"),
    pytest.param("export", "latency_budget_ms = inf", "[export]: latency_budget_ms must be > 0 and <= 1000000",
                 id="run-export-budget-inf"),
    pytest.param("export", "latency_budget_ms = nan", "[export]: latency_budget_ms must be > 0 and <= 1000000",
                 id="run-export-budget-nan"),
    pytest.param("export", "repeats = 0", "[export]: repeats must be an integer >= 1 and <= 10000",
                 id="run-export-repeats-zero"),
    pytest.param("front", "measure = -1", "[front]: measure must be an integer >= 0 and <= 1000",
                 id="run-front-measure-negative"),
    pytest.param("front", "measure = 1_000_000_000", "[front]: measure must be an integer >= 0 and <= 1000",
                 id="run-front-measure-absurd"),
    pytest.param("search", "budget = 1_000_000_000", "[search]: budget must be an integer >= 1 and <= 1000000",
                 id="run-search-budget-absurd"),
    pytest.param("search", "seed = -1", f"[search]: seed must be {SEED_RANGE}", id="run-search-seed-negative"),
])
def test_a_bad_pipeline_config_is_one_line_naming_file_key_and_range(hostile_cli, tmp_path, table, lines, expected):
    # no [[objectives]]: were the value accepted, that would be the error
    _refuse_config(hostile_cli, tmp_path, f"[{table}]\n{lines}\n", "run", "--out", str(tmp_path / "out"),
                   expected=expected)


# ---------------------------------------------------------------- training guard
def test_training_stops_with_one_line_when_the_loss_is_not_finite(tmp_path, capsys, monkeypatch):
    """A loss that becomes NaN (here from the first step: the strategy's step is replaced, so no real
    training runs) stops the run with an error naming the step; no checkpoint is saved, and every JSON
    file the run wrote is valid JSON (no NaN)."""
    from nas.cli import main
    from supernets.training.strategies import SandwichRule

    monkeypatch.setattr(SandwichRule, "step", lambda self, *args, **kwargs: float("nan"))
    out = tmp_path / "run"
    code = main(["train", "--out", str(out), "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "8",
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err, err
    last = err.splitlines()[-1]  # the lines above are the run's progress log
    assert last.startswith("nas train: error: training diverged: the loss became nan at step 1 "), last
    assert not (out / "checkpoint.pt").exists()

    def no_constant(name):
        raise AssertionError(f"{name} written into JSON")

    for path in out.glob("*.json*"):
        for text in path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]:
            json.loads(text, parse_constant=no_constant)

"""`nas search / jobs / pareto / worker` on a TOML config and a real SQLite store; config errors."""

from __future__ import annotations

import json

import pytest

from nas.cli import main

CONFIG = """
[search]
space = "tiny_mbv3"
budget = 24
seed = 1
job = "cli"
storage = "{storage}"

[[objectives]]
name = "macs"
metric = "macs"

[[objectives]]
name = "sram_kb"
metric = "stm32f746.peak_sram_kb"

[[objectives]]
name = "fpga_ms"
metric = "zcu104.latency_ms"

[[constraints]]
metric = "stm32f746.flash_kb"
op = "<="
bound = 1000
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    storage = f"sqlite:///{tmp / 'nas.db'}"
    config = tmp / "search.toml"
    config.write_text(CONFIG.format(storage=storage))
    return tmp, storage, config


def test_search_prints_the_front_and_the_random_baseline(finished, capsys):
    tmp, storage, config = finished
    assert main(["search", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "job cli:" in out and "Pareto front" in out and "vs random search at equal budget" in out
    assert main(["jobs", "--storage", storage]) == 0
    jobs = capsys.readouterr().out
    assert "cli\ttiny_mbv3\tnsga2\t24/24 evaluated\tdone" in jobs and "cli.random" in jobs


def test_pareto_exports_table_csv_json_and_png(finished, capsys):
    tmp, storage, config = finished
    assert main(["pareto", "cli", "--storage", storage, "--format", "json", "--plot", str(tmp / "front.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accuracy_predictor"] is None  # nsga2: no predictor
    rows = out["front"]
    assert rows and {"arch_id", "macs", "sram_kb", "fpga_ms", "sram_kb.source", "sram_kb.profile"} <= set(rows[0])
    assert all(r["sram_kb.profile"] == "stm32f746@1" and r["feasible"] for r in rows)
    assert (tmp / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["pareto", "cli", "--storage", storage, "--format", "csv", "--objectives", "macs,sram_kb"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert "macs" in header and "fpga_ms" not in header
    assert main(["pareto", "cli", "--storage", storage]) == 0
    assert "arch_id" in capsys.readouterr().out


def test_resume_extends_the_same_job(finished, capsys):
    _, storage, config = finished
    assert main(["search", str(config), "--no-progress", "--budget", "30", "--no-baseline"]) == 0
    assert "job cli: " in capsys.readouterr().out
    assert main(["jobs", "--storage", storage]) == 0
    assert "30/30 evaluated" in capsys.readouterr().out


def test_worker_on_a_finished_job_exits_and_python_jobs_are_explained(finished, capsys, tmp_path):
    _, storage, _ = finished
    assert main(["worker", "--job", "cli", "--storage", storage, "--quiet", "--idle-exit", "1"]) == 0
    assert "0 trial(s) evaluated" in capsys.readouterr().out
    from nas.jobs.objectives import Objective
    from nas.jobs.search import search
    from search_spaces import get_space

    other = f"sqlite:///{tmp_path / 'py.db'}"
    search(get_space("tiny_mbv3"), [Objective("m", "macs"), Objective("p", lambda a: 1.0)], budget=2,
           storage=other, job="py", progress=False)
    assert main(["worker", "--job", "py", "--storage", other, "--idle-exit", "1"]) == 2
    assert "started from Python" in capsys.readouterr().err


@pytest.mark.parametrize("edit,message", [
    (("budget = 24", 'budget = "many"'), "budget must be an integer"),
    (("[search]", "[serch]\n[search]"), "unknown table(s) ['serch']"),
    (('metric = "macs"', 'metric = "flops"'), "unknown metric 'flops'"),
    (('metric = "zcu104.latency_ms"', 'metric = "zcu999.latency_ms"'), "zcu104"),
    (('op = "<="', 'op = "<"'), "op must be one of"),
    (('metric = "macs"', 'metric = "accuracy"'), "[accuracy] checkpoint"),
    (('name = "macs"\n', ''), "missing key(s) ['name']"),
])
def test_bad_configs_fail_with_one_line_naming_the_key(tmp_path, capsys, edit, message):
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.format(storage=f"sqlite:///{tmp_path / 'nas.db'}").replace(*edit, 1))
    assert main(["search", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0, err
    assert not (tmp_path / "nas.db").exists()


def test_pareto_errors(finished, capsys):
    _, storage, _ = finished
    assert main(["pareto", "nope", "--storage", storage]) == 2
    assert "no job 'nope'" in capsys.readouterr().err
    assert main(["pareto", "cli", "--storage", storage, "--objectives", "macs,bogus"]) == 2
    assert "unknown ['bogus']" in capsys.readouterr().err
    assert main(["jobs", "--storage", "redis://x"]) == 2
    assert "storage must be a URL" in capsys.readouterr().err


def test_search_without_workers_gives_up_after_the_wait_timeout(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    config = tmp_path / "search.toml"
    config.write_text(CONFIG.format(storage=storage).replace('job = "cli"', 'job = "no-workers"'))
    rc = main(["search", str(config), "--no-progress", "--no-local-eval", "--no-baseline", "--wait-timeout", "0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "no-workers" in err[0] and "nas worker" in err[0], err
    assert "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("forged", [{"objectives": [{"direction": "minimize"}]}, {"budget": "many"}, ["not", "a", "dict"]])
def test_a_forged_job_record_is_one_line_exit_2_and_the_store_is_left_alone(tmp_path, capsys, forged):
    import optuna

    from nas.jobs.store import JOB_ATTR

    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="forged", storage=storage, directions=["minimize"])
    study.set_user_attr(JOB_ATTR, forged)
    for argv in (["jobs", "--storage", storage], ["pareto", "forged", "--storage", storage]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "forged" in err[0] and "malformed" in err[0], err
    assert optuna.load_study(study_name="forged", storage=storage).user_attrs[JOB_ATTR] == forged

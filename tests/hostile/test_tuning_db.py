"""Hostile TVM tuning databases (issue 18, part 4): a ``--tuning-db``/``--db`` folder is untrusted input.

The report: ``nas export --tuning-db DIR`` silently emptied a database file it could not parse (the repair
before opening dropped every line that was not JSON, and a file of none became empty). Now every line is
checked against MetaSchedule's schema (``kernels.tvm.db.check_database``: a workload line is ``[hash, base64
module]``, a record ``[workload index, [trace, run_secs (finite > 0), target, args_info]]``, the default
times ``{task key: seconds > 0}``); a bad line is one ``TuningDatabaseError`` (``nas``: a ``NASError``) naming
the file, the line and what a valid line looks like, and no file is written. The one repair left is a last
line cut off mid-write after good lines (a killed tuner), and it keeps the file's mode. ``nas tune-space``
checks the folder before extracting any task. Hypothesis property: any mutation of a database either is
refused with every byte in place, or leaves a database that checks clean and lost at most its cut last line.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from _mutations import tally_examples
from conftest import check_one_line, refuse_load, tally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels.tvm import db as tvm_db
from kernels.tvm.db import RECORD_FILE, WORKLOAD_FILE, TuningDatabaseError
from search_spaces import get_space

DEFAULT_TIMES = tvm_db.DEFAULT_TIMES_FILE
WORKLOADS = ['["13793266642815390492", "NmMBAAAAAAB7CiAgInJvb3RfaW5kZXgiOiA3MzIsCiAg"]',
             '["11459676070867949354", "NmMBAAAAAAB7CiAgInJvb3RfaW5kZXgiOiA4MTAsCiAg"]']
RECORDS = ['[0, [[[["GetSBlock", [], ["pad_temp", "main"], ["b0"]]], []], [2.3e-06], {"kind": "llvm", "num-cores": 2}, '
           '[["TENSOR", "float32", [1, 8, 8, 8]]]]]',
           '[1, [[[], []], [4.2e-06, 4.4e-06], {"kind": "llvm"}, []]]',
           '[1, [[[], []], null, {"kind": "llvm"}, []]]']
TIMES = '{"11459676070867949354": 7.0e-07, "13793266642815390492": 4.7e-07}'


def _write_db(folder, workloads=WORKLOADS, records=RECORDS, times=TIMES):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in ((WORKLOAD_FILE, workloads), (RECORD_FILE, records), (DEFAULT_TIMES, times)):
        if content is None:
            continue
        data = content if isinstance(content, bytes) else (
            content if isinstance(content, str) else "".join(line + "\n" for line in content)).encode()
        (folder / name).write_bytes(data)
        os.chmod(folder / name, 0o644)
    return folder


def _files(folder) -> dict:
    return {p.name: (p.read_bytes(), stat.S_IMODE(p.stat().st_mode)) for p in sorted(folder.iterdir())}


def test_a_good_database_checks_clean(tmp_path):
    db = _write_db(tmp_path / "db")
    assert tvm_db.check_database(db) == (None, None) and tvm_db.load_default_times(db)
    before = _files(db)
    assert tvm_db.repair_database(db) == 0 and _files(db) == before


# name: (the workload file, the record file, the default-times file (None: the good one), the file and line named,
# what the line must say); each was rewritten (emptied, lines dropped) or trusted before issue 18
BAD = {
    "workload file of prose (the report)": (["this is not json", '{"a": 1}'], None, None,
                                            f"{WORKLOAD_FILE}' line 1: not JSON"),
    "workload file of binary bytes": (bytes(range(256)) * 4, None, None, f"{WORKLOAD_FILE}' byte 128: not UTF-8"),
    "one unterminated line of garbage": (b"\x00garbage without a newline", None, None, f"{WORKLOAD_FILE}' line 1"),
    "a garbage line between good ones": ([WORKLOADS[0], "<<<merge conflict>>>", WORKLOADS[1]], None, None,
                                         f"{WORKLOAD_FILE}' line 2: not JSON"),
    "a workload of three items": ([WORKLOADS[0], '["1", "YQ==", 3]'], None, None,
                                  f"{WORKLOAD_FILE}' line 2: expected a 2-item list, got a list of 3"),
    "a workload hash that is not a number": (['["abc", "YQ=="]'], [], None, "structural hash must be a decimal"),
    "a record with NaN seconds": (None, ['[0, [[], [NaN], {"kind": "llvm"}, []]]'], None,
                                  f"{RECORD_FILE}' line 1: not JSON (NaN is not a number JSON allows)"),
    "a record with negative seconds": (None, [RECORDS[0], '[0, [[], [-1.0], {"kind": "llvm"}, []]]'], None,
                                       f"{RECORD_FILE}' line 2: run_secs must be finite seconds > 0, got -1.0"),
    "a record with zero seconds": (None, ['[0, [[], [0.0], {"kind": "llvm"}, []]]'], None, "finite seconds > 0"),
    "a record with seconds as text": (None, ['[0, [[], ["fast"], {"kind": "llvm"}, []]]'], None, "got 'fast'"),
    "a record of a missing workload": (None, [RECORDS[0], '[7, [[], [1e-06], {"kind": "llvm"}, []]]'], None,
                                       "line 2: workload index 7 is not a line of the workload file (0..1)"),
    "a record index as text": (None, ['["0", [[], [1e-06], {"kind": "llvm"}, []]]'], None,
                               "the workload index must be an integer"),
    "a record of three fields": (None, ['[0, [[], [1e-06], {"kind": "llvm"}]]'], None, "must be a 4-item list"),
    "a record whose target is text": (None, ['[0, [[], [1e-06], "llvm", []]]'], None, 'object with a "kind"'),
    "records and no workloads": ([], [RECORDS[1]], None, "the workload file has no workloads"),
    "default times of prose": (None, None, "fast enough", f"{DEFAULT_TIMES}' as a whole: not a JSON object"),
    "default times negative": (None, None, '{"123": -1.0}', f"{DEFAULT_TIMES}' key '123': seconds must be"),
    "default times Infinity": (None, None, '{"123": Infinity}', "Infinity is not a number JSON allows"),
    "default times a list": (None, None, "[1, 2]", "not a JSON object but a list of 2"),
    "default times keyed by name": (None, None, '{"conv": 1e-06}', "key 'conv': a task key must be a decimal"),
}


def _bad_db(tmp_path, workloads, records, times):
    return _write_db(tmp_path / "db", WORKLOADS if workloads is None else workloads,
                     RECORDS if records is None else records, TIMES if times is None else times)


@pytest.mark.parametrize(("workloads", "records", "times", "expected"), BAD.values(), ids=BAD.keys())
def test_a_bad_database_file_is_refused_and_left_byte_for_byte(tmp_path, workloads, records, times, expected):
    db = _bad_db(tmp_path, workloads, records, times)
    before = _files(db)
    with pytest.raises(TuningDatabaseError) as info:
        tvm_db.repair_database(db)  # what open_database runs before TVM reads the files
    message = str(info.value)
    assert check_one_line(message) is None and expected in message, message
    assert "must be" in message and "nothing was changed" in message  # what a valid line is
    assert _files(db) == before
    from nas.export.tuning import check_tuning_db

    refuse_load("tuning_db", lambda: check_tuning_db(db), contains=expected)
    assert _files(db) == before


@pytest.mark.parametrize("case", ["default times of prose", "default times negative"])
def test_the_default_times_are_never_written_over_a_bad_file(tmp_path, case):
    db = _bad_db(tmp_path, *BAD[case][:3])
    before = _files(db)
    with pytest.raises(TuningDatabaseError, match="nothing was changed"):
        tvm_db.save_default_times(db, {"42": 1e-6})  # what tuning does after timing the default schedules
    assert _files(db) == before
    tally("loader", "tuning_db", broken=False)


def test_a_good_last_line_without_its_newline_gets_one(tmp_path):
    db = _write_db(tmp_path / "db", records="".join(r + "\n" for r in RECORDS) + RECORDS[1])
    assert tvm_db.repair_database(db) == 0
    assert (db / RECORD_FILE).read_text() == "".join(r + "\n" for r in [*RECORDS, RECORDS[1]])
    assert tvm_db.check_database(db) == (None, None)
    tally("loader", "tuning_db", broken=False)


def test_a_line_cut_mid_write_is_still_dropped_and_the_mode_kept(tmp_path):
    db = _write_db(tmp_path / "db", records=("".join(r + "\n" for r in RECORDS) + RECORDS[1][:25]).encode())
    assert tvm_db.repair_database(db) == 1
    assert (db / RECORD_FILE).read_text() == "".join(r + "\n" for r in RECORDS)
    assert stat.S_IMODE((db / RECORD_FILE).stat().st_mode) == 0o644  # a temp file's 0600 was left before
    tally("loader", "tuning_db", broken=False)


def test_nas_tune_space_refuses_a_bad_database_before_any_work(tmp_path, hostile_cli):
    db = _bad_db(tmp_path, *BAD["workload file of prose (the report)"][:3])
    hostile_cli(["tune-space", "tiny_mbv3", "--device", "host-cpu", "--minutes", "0.05", "--db", str(db), "--check",
                 "0", "--no-progress", "--quiet"], watch=[db], contains=f"{db / WORKLOAD_FILE}' line 1: not JSON")


@pytest.mark.tvm
def test_nas_export_refuses_a_bad_tuning_db_and_leaves_it_untouched(tmp_path, hostile_cli):
    db = _bad_db(tmp_path, *BAD["workload file of prose (the report)"][:3])
    out = tmp_path / "out"
    arch = get_space("tiny_mbv3").sample(np.random.default_rng(0))
    hostile_cli(["export", "--space", "tiny_mbv3", "--arch", json.dumps(arch.to_dict()), "--format", "tvm",
                 "--tuning-db", str(db), "--out", str(out), "--quiet", "--repeats", "1"], watch=[db],
                contains=f"{db / WORKLOAD_FILE}' line 1: not JSON")
    assert not out.exists()


# ------------------------------------------------------------------------------------------ property
LINE_EDITS = st.sampled_from(["keep"] * 6 + ["garbage", "json", "cut", "drop", "duplicate", "number"])
GARBAGE = st.one_of(st.text(max_size=20), st.binary(max_size=12).map(lambda b: b.decode("latin-1")),
                    st.sampled_from(["", "null", "[]", "{}", "[0]", "NaN", '["1", ""]', "[0, [[], [], {}, []]]",
                                     '[0, [[], [1e-06], {"kind": 1}, []]]', '[2, [[], [1e-06], {"kind": "x"}, []]]']))


@st.composite
def mutated_databases(draw):
    """The good database's files, each line kept, replaced by garbage or other JSON, cut, dropped, duplicated or
    its numbers changed; and now and then the file's last line cut (a killed writer)."""
    files = {}
    for name, lines in ((WORKLOAD_FILE, WORKLOADS), (RECORD_FILE, RECORDS)):
        out = []
        for line in lines:
            edit = draw(LINE_EDITS)
            if edit == "keep":
                out.append(line)
            elif edit in ("garbage", "json"):
                out.append(draw(GARBAGE))
            elif edit == "cut":
                out.append(line[:draw(st.integers(0, len(line)))])
            elif edit == "duplicate":
                out += [line, line]
            elif edit == "number":
                out.append(line.replace("e-06", draw(st.sampled_from(["", "e+400", "e-06]", "-1"]))).replace(
                    "[0,", draw(st.sampled_from(["[0,", "[5,", "[-1,", "[0.5,"]))))
        text = "".join(line + "\n" for line in out)
        if draw(st.booleans()) and text:
            text = text[:-draw(st.integers(1, min(40, len(text))))]
        files[name] = text.encode("utf-8", errors="surrogatepass")
    return files


def test_any_mutated_database_is_refused_untouched_or_left_clean(tmp_path):
    db = tmp_path / "db"
    runs = []

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(files=mutated_databases())
    def refused_or_clean(files) -> None:
        runs.append(1)
        _write_db(db, files[WORKLOAD_FILE], files[RECORD_FILE])
        before = _files(db)
        try:
            dropped = tvm_db.repair_database(db)
        except TuningDatabaseError as err:
            assert check_one_line(str(err)) is None, str(err)[:300]
            assert _files(db) == before
            return
        after = _files(db)
        assert tvm_db.check_database(db) == (None, None)  # what TVM reads now follows the schema
        for name in (WORKLOAD_FILE, RECORD_FILE):  # at most the cut last line went, or a newline came
            old, new = before[name][0], after[name][0]
            assert after[name][1] == before[name][1]
            assert old == new or new == old + b"\n" or (old.startswith(new) and b"\n" not in old[len(new):])
        assert dropped == sum(len(before[n][0]) > len(after[n][0]) for n in (WORKLOAD_FILE, RECORD_FILE))

    tally_examples("tuning_db", runs, refused_or_clean)

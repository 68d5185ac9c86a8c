"""Hostile eval caches (issue 18, part 4): ``eval_cache.json`` beside a checkpoint is untrusted and disposable.

A figure is served from the cache only when the file is for the same checkpoint (content hash) and data
and the entry for the same ``arch_id`` and evaluation setting (BN recalibration batches), with every value
in range (a top-1 in [0, 1] that is a count of ``n`` images, a finite loss, a time in the past). A file
that breaks the schema is ignored with one ``EvalCacheWarning`` line naming the file and the key, the
figure is measured again and the file replaced; nothing crashes. A figure that does come from the cache
says so (``EvalResult.cached``/``measured_at``; the accuracy ``Metric``'s profile ends in
``+cached-<time>``): a well-formed forgery cannot be told from a real entry, but it never passes as a
fresh measurement. Hypothesis property: any mutation of a real cache file gives in-range cached figures
or none.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import warnings

import pytest
import torch
from _mutations import (ANY_FLOAT, INT64, mutate, mutations, nested, now_and_then_overwrite_bytes, set_delete_or_add,
                        tally_examples)
from conftest import check_one_line, tally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.cli import main
from nas.jobs.accuracy import AccuracyMetrics
from search_spaces import get_space
from supernets import create_supernet
from supernets.checkpoint import CHECKPOINT_NAME
from supernets.evaluate import EvalCache, EvalCacheWarning, evaluate, evaluation_setting

SPACE = get_space("tiny_mbv3")
ARCH = SPACE.smallest()
HASH, DATA = "ab" * 32, "synthetic/val0.2/seed0"
SETTING = evaluation_setting(1)


@pytest.fixture(scope="module")
def supernet():
    return create_supernet("tiny_mbv3", seed=0)


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(16, 1, 28, 28, generator=gen), torch.randint(0, 10, (16,), generator=gen)


def _evaluate(supernet, batch, cache, n_calib: int = 1):
    return evaluate(supernet, ARCH, [batch], calib_batches=[batch] * n_calib, n_calib_batches=n_calib, cache=cache)


@pytest.fixture(scope="module")
def measured(supernet, batch, tmp_path_factory):
    """``(the true result, the cache file's text)`` of one real evaluation."""
    path = tmp_path_factory.mktemp("cache") / "eval_cache.json"
    result = _evaluate(supernet, batch, EvalCache(checkpoint_hash=HASH, data=DATA, path=path))
    return result, path.read_text(encoding="utf-8")


def _entry(doc):
    return doc["results"][ARCH.arch_id]


def _set(key, value):
    return lambda doc: _entry(doc).__setitem__(key, value)


# name: (edit of the cache document, what the warning names); each was ignored without a word before issue 18
MALFORMED = {
    "accuracy 2.0": (_set("top1", 2.0), "top1 = 2.0: expected a fraction in [0, 1]"),
    "accuracy negative": (_set("top1", -0.5), "top1 = -0.5"),
    "accuracy a string": (_set("top1", "0.9"), "top1 = 0.9"),
    "accuracy not a count of the images": (_set("top1", 0.123456), "not a count of correct images out of n = 16"),
    "loss infinite": (_set("loss", math.inf), "Infinity"),
    "loss negative": (_set("loss", -1.0), "loss = -1.0"),
    "n zero": (_set("n", 0), "n = 0: expected an integer in 1.."),
    "n a boolean": (_set("n", True), "n = True"),
    "n huge": (_set("n", 10**40), "n = 1000000000000000"),
    "measured in the future": (_set("measured_at", "2999-01-01T00:00:00Z"), "in the future"),
    "measured_at not a time": (_set("measured_at", "yesterday"), "measured_at: expected an ISO 8601"),
    "an extra entry key": (_set("source", "measured"), "expected an object of exactly"),
    "an arch_id that is not one": (lambda doc: doc["results"].__setitem__("../../x", _entry(doc)), "an arch_id is"),
    "results a list": (lambda doc: doc.__setitem__("results", [1, 2]), "results: expected an object"),
    "an older format": (lambda doc: doc.pop("format_version"), "format_version is 'None', this hwnas reads 2"),
    "an unknown top-level key": (lambda doc: doc.__setitem__("trusted", True), "unknown key 'trusted'"),
}


@pytest.mark.parametrize(("edit", "expected"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_cache_is_ignored_with_one_line_and_measured_again(tmp_path, supernet, batch, measured, edit,
                                                                       expected):
    truth, text = measured
    doc = json.loads(text)
    edit(doc)
    path = tmp_path / "eval_cache.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.warns(EvalCacheWarning) as caught:
        cache = EvalCache(checkpoint_hash=HASH, data=DATA, path=path)
    (warning,) = caught
    message = str(warning.message)
    assert check_one_line(message) is None and str(path) in message and expected in message, message
    assert len(cache) == 0
    result = _evaluate(supernet, batch, cache)
    assert result == truth and not result.cached
    assert EvalCache(checkpoint_hash=HASH, data=DATA, path=path).get(ARCH.arch_id, SETTING) == truth  # replaced
    tally("loader", "eval_cache_json", broken=False)


RAW = {
    "binary garbage": bytes(range(256)) * 4,
    "empty": b"",
    "truncated": None,
    "NaN accuracy": None,
    "nested too deeply (RecursionError)": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("name", RAW)
def test_a_garbage_cache_file_never_crashes_and_is_measured_again(tmp_path, supernet, batch, measured, name):
    truth, text = measured
    data = RAW[name]
    if name == "truncated":
        data = text.encode()[: len(text) // 2]
    elif name == "NaN accuracy":
        data = text.replace(f'"top1": {truth.top1}', '"top1": NaN').encode()
        assert b"NaN" in data
    path = tmp_path / "eval_cache.json"
    path.write_bytes(data)
    with pytest.warns(EvalCacheWarning, match="ignoring the eval cache"):
        cache = EvalCache(checkpoint_hash=HASH, data=DATA, path=path)
    result = _evaluate(supernet, batch, cache)
    assert result == truth and not result.cached
    tally("loader", "eval_cache_json", broken=False)


# name: (edit, keyword changes of the reader); the entry is someone else's: quietly not ours, measured again
FOREIGN = {
    "another checkpoint's hash": (lambda doc: doc.__setitem__("checkpoint_hash", "cd" * 32), {}),
    "another data spec": (lambda doc: doc.__setitem__("data", "synthetic/val0.5/seed1"), {}),
    "another BN recalibration (was served)": (lambda doc: None, {"n_calib": 2}),
}


@pytest.mark.parametrize(("edit", "reader"), FOREIGN.values(), ids=FOREIGN.keys())
def test_a_figure_of_another_checkpoint_data_or_setting_is_never_served(tmp_path, supernet, batch, measured, edit,
                                                                        reader):
    truth, text = measured
    doc = json.loads(text)
    _entry(doc).update(top1=1.0, loss=0.0)  # a flattering figure under another key
    edit(doc)
    path = tmp_path / "eval_cache.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not malformed: nothing to warn about
        cache = EvalCache(checkpoint_hash=HASH, data=DATA, path=path)
    result = _evaluate(supernet, batch, cache, **reader)
    assert not result.cached and result.top1 != 1.0
    if not reader:
        assert result == truth
    tally("loader", "eval_cache_json", broken=False)


def test_a_figure_from_the_cache_says_so(tmp_path, supernet, batch, measured):
    """A well-formed entry (here a forged one: 15 of 16 right) is served, and only as cached, with its time."""
    truth, text = measured
    doc = json.loads(text)
    _entry(doc).update(top1=15 / 16, measured_at="2026-01-02T03:04:05Z")
    path = tmp_path / "eval_cache.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = _evaluate(supernet, batch, EvalCache(checkpoint_hash=HASH, data=DATA, path=path))
    assert result.top1 == 15 / 16 and result.cached and result.measured_at == "2026-01-02T03:04:05Z"
    assert not truth.cached and truth.measured_at != result.measured_at  # the measurement itself: fresh
    tally("loader", "eval_cache_json", broken=False)


def test_a_result_the_reader_would_refuse_is_not_written(tmp_path):
    """A diverged network's NaN loss is returned as measured, but never written where it would poison the file."""
    from supernets.evaluate import EvalResult

    path = tmp_path / "eval_cache.json"
    cache = EvalCache(checkpoint_hash=HASH, data=DATA, path=path)
    cache.put(ARCH.arch_id, EvalResult(top1=0.1, loss=math.nan, n=10, bn_recalibrated=True), SETTING)
    assert cache.get(ARCH.arch_id, SETTING) is None and not path.exists()
    tally("loader", "eval_cache_json", broken=False)


@pytest.fixture
def run(tiny_checkpoint, tmp_path):
    """A private copy of the tiny `nas train` folder (no eval cache yet)."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name in (CHECKPOINT_NAME, "config.json"):
        shutil.copy(tiny_checkpoint / name, folder / name)
    return folder


def test_the_accuracy_metric_of_a_cached_figure_says_cached(run):
    measure = AccuracyMetrics.open(run, SPACE).fn("accuracy")
    fresh = measure(ARCH)
    assert fresh.source == "measured" and "+cached" not in fresh.profile
    again = AccuracyMetrics.open(run, SPACE).fn("accuracy")(ARCH)  # a new process would read the file
    assert again.value == fresh.value and again.source == "measured"
    stamp = json.loads((run / "eval_cache.json").read_text())["results"][ARCH.arch_id]["measured_at"]
    assert again.profile == f"{fresh.profile}+cached-{stamp}"
    tally("loader", "eval_cache_json", broken=False)


def test_nas_eval_with_a_forged_cache_measures_again(run, capsys):
    from nas.training.evaluation import CheckpointEvaluator
    from supernets.evaluate import EvalResult

    cache = CheckpointEvaluator(run).cache  # the checkpoint's own key (hash, data): the forgery matches it
    config = json.loads((run / "config.json").read_text())
    cache.put(ARCH.arch_id, EvalResult(top1=0.5, loss=1.0, n=1000, bn_recalibrated=True),
              evaluation_setting(config["calib_batches"]))
    doc = json.loads((run / "eval_cache.json").read_text())
    _entry(doc)["top1"] = 2.0
    (run / "eval_cache.json").write_text(json.dumps(doc))
    with pytest.warns(EvalCacheWarning, match=r"top1 = 2.0: expected a fraction in \[0, 1\]"):
        assert main(["eval", "--checkpoint", str(run), "--arch", json.dumps(ARCH.to_dict()), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["top1"] <= 1.0 and result["n"] == 1000
    assert _entry(json.loads((run / "eval_cache.json").read_text()))["top1"] == result["top1"]  # measured again
    tally("cli", "eval", broken=False)


# ------------------------------------------------------------------------------------------ property
SCALARS = st.one_of(
    INT64,
    st.sampled_from([0, 1, 16, 10**12, 0.0, 0.5, 1.0, 2.0, -0.0, 1e300, math.nan, math.inf, -math.inf, None, True,
                     False]),
    ANY_FLOAT,
    st.text(max_size=12),
    st.sampled_from(["", HASH, DATA, SETTING, "2026-01-02T03:04:05Z", "2999-01-01T00:00:00Z", ARCH.arch_id]),
)
MUTATION = mutations(["set", "set", "delete", "add", "copy"], nested(SCALARS, list_size=3, key_size=8), depth=4,
                     key_size=16)


def _mutate(parent, key, op, value, extra):
    if op == "copy" and isinstance(parent, dict):  # the entry again under another arch_id
        parent[extra] = copy.deepcopy(parent[key])
    else:
        set_delete_or_add(parent, key, op, value, extra)


@st.composite
def mutated_caches(draw, text: str) -> bytes:
    doc = mutate(draw, json.loads(text), MUTATION, most=3, apply=_mutate)
    return now_and_then_overwrite_bytes(draw, json.dumps(doc, indent=1).encode(), 8)


def test_any_mutated_cache_gives_in_range_cached_figures_or_none(tmp_path, measured):
    truth, text = measured
    path = tmp_path / "eval_cache.json"
    runs = []

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=mutated_caches(text))
    def in_range_or_none(data: bytes) -> None:
        runs.append(1)
        path.write_bytes(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cache = EvalCache(checkpoint_hash=HASH, data=DATA, path=path)
        for warning in caught:
            assert warning.category is EvalCacheWarning and check_one_line(str(warning.message)) is None
        assert len(caught) <= 1 and (len(cache) == 0 or not caught)
        try:
            doc = json.loads(data)
            ids = list(doc["results"]) if isinstance(doc, dict) and isinstance(doc.get("results"), dict) else []
        except (ValueError, RecursionError):
            ids = []
        for arch_id in ids:
            hit = cache.get(arch_id, SETTING) if isinstance(arch_id, str) else None
            if hit is None:
                continue
            assert hit.cached and isinstance(hit.measured_at, str)
            assert 0.0 <= hit.top1 <= 1.0 and math.isfinite(hit.loss) and hit.loss >= 0 and 1 <= hit.n <= 10**9
            assert abs(hit.top1 * hit.n - round(hit.top1 * hit.n)) <= 1e-6 * hit.n

    tally_examples("eval_cache_json", runs, in_range_or_none)

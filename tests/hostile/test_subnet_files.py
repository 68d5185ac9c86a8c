"""Hostile export folders and training checkpoints (issue 18, part 4): ``arch.json`` + ``model.pt`` of
``nas export`` and the ``checkpoint.pt`` of ``nas train`` are untrusted input with one schema.

``nas.load_subnet`` checks every key of ``arch.json`` (types, the space, the arch in its space, supernet
settings in range, finite numbers) before anything is built, lays the module out on the meta device and
compares ``model.pt``'s tensors with it before any memory is given: a crafted ``num_classes`` costs
nothing. ``load_checkpoint`` checks the metadata (a registered supernet, a known strategy, integers and
fractions in range, the RNG state's tensors), so ``nas eval``/``nas export --checkpoint`` refuse a bad one
with one line. Hypothesis property: any mutation of a real ``arch.json`` loads as a module or is one line.

(A truncated, binary or missing ``model.pt``/``checkpoint.pt`` was one line before issue 18 as well:
``tests/nas/export/test_export.py`` and ``tests/supernets/test_checkpoint.py`` keep guarding that.)
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import resource
import shutil

import numpy as np
import pytest
import torch
from _mutations import (ANY_FLOAT, INT64, drop_key, mutate, mutations, nested, overwrite_bytes, set_delete_or_add,
                        set_key, tally_examples)
from conftest import check_one_line, refuse_load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nas
from nas.export.subnet import export_subnet
from search_spaces import NASError, get_space, quantized
from supernets import create_supernet
from supernets.checkpoint import CHECKPOINT_NAME, load_checkpoint

SPACE = get_space("tiny_mbv3")
ARCH = SPACE.sample(np.random.default_rng(0))


@contextlib.contextmanager
def memory_cap(extra: int = 2 << 30):
    """At most ``extra`` more bytes of address space inside the block (Linux; elsewhere no cap): a 10 GB
    allocation fails fast instead of taking the machine's memory."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        yield
        return
    old = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two real export folders (torch format only): a tiny_mbv3 arch and a tiny_mbv3+q arch."""
    root = tmp_path_factory.mktemp("exports")
    supernet = create_supernet("tiny_mbv3", seed=0)
    qspace = quantized(SPACE)
    qarch = qspace.sample(np.random.default_rng(1))
    export_subnet(supernet, ARCH, root / "plain", formats="torch", warmup=1, repeats=1)
    export_subnet(supernet, qarch, root / "q", formats="torch", warmup=1, repeats=1)
    for name in ("plain", "q"):
        nas.load_subnet(root / name)  # the untouched folders load
    return root


def _folder(exports, tmp_path, which: str = "plain"):
    folder = tmp_path / which
    shutil.copytree(exports / which, folder)
    return folder


def _edit(folder, edit) -> None:
    doc = json.loads((folder / "arch.json").read_text(encoding="utf-8"))
    edit(doc)
    (folder / "arch.json").write_text(json.dumps(doc), encoding="utf-8")


def test_a_huge_num_classes_is_refused_before_any_allocation(exports, tmp_path):
    """The report: num_classes 10^7 made load_subnet allocate 10 GB before it read the weights."""
    folder = _folder(exports, tmp_path)
    _edit(folder, set_key("supernet.num_classes", 10**7))
    with memory_cap():
        message = refuse_load("arch_json", lambda: nas.load_subnet(folder), contains="supernet.num_classes")
    assert str(folder / "arch.json") in message and "1..100000" in message


# name: (edit of arch.json, which export, what the one line must say); each crashed, was accepted, or built the
# supernet before it said what was wrong (and then without naming the file or the key), before issue 18
BAD = {
    "num_classes negative (ValueError)": (set_key("supernet.num_classes", -3), "plain", "supernet.num_classes"),
    "num_classes a string (ValueError)": (set_key("supernet.num_classes", "abc"), "plain", "1..100000"),
    "num_classes a float (accepted)": (set_key("supernet.num_classes", 10.5), "plain", "supernet.num_classes"),
    "num_classes in range but not the weights'": (set_key("supernet.num_classes", 100), "plain", "num_classes"),
    "in_channels that is not the weights'": (lambda d: (d["supernet"].update(in_channels=3),
                                                        d["input_shape"].__setitem__(1, 3)), "plain", "in_channels"),
    "supernet a list (AttributeError)": (set_key("supernet", [1, 2]), "plain", "supernet: expected an object"),
    "supernet with a seed (accepted)": (set_key("supernet.seed", 3), "plain", "supernet.seed: unknown"),
    "supernet with dropout (ValueError)": (set_key("supernet.dropout_rate", 5), "plain", "supernet.dropout_rate"),
    "space a list (TypeError)": (set_key("space", ["tiny_mbv3"]), "plain", "space: expected a string"),
    "space unknown (no file named)": (set_key("space", "nope"), "plain", "space: 'nope' is not a space"),
    "arch not in its space (no file named)": (set_key("arch.ks_0", 4), "plain", "arch: space 'tiny_mbv3': ks_0=4"),
    "arch a list (no file named)": (set_key("arch", [1]), "plain", "arch: expected a JSON object"),
    "arch_id a number (no file named)": (set_key("arch_id", 5), "plain", "arch_id: expected a string"),
    "space_version a list": (set_key("space_version", [1]), "plain", "space_version"),
    "no format_version (accepted)": (drop_key("format_version"), "plain", "format_version: missing"),
    "format_version 2 (accepted)": (set_key("format_version", 2), "plain",
                                    "format_version: 2 is not an integer in 1..1"),
    "an unknown key (accepted)": (set_key("payload", "x" * 100), "plain", "key 'payload': unknown"),
    "input_shape of another arch (accepted)": (set_key("input_shape", [1, 1, 64, 64]), "plain", "input_shape"),
    "checkpoint_sha256 not a digest (accepted)": (set_key("checkpoint_sha256", "xyz"), "plain", "checkpoint_sha256"),
    "weights of an unknown kind (accepted)": (set_key("weights", "pretrained"), "plain", "weights"),
    "accelerator a list (accepted)": (set_key("accelerator", [1]), "plain", "accelerator: expected an object"),
    "network_arch_id of another network (accepted)": (set_key("network_arch_id", "0" * 16), "q", "network_arch_id"),
    "quantization mode unknown (accepted)": (set_key("quantization.quantize", "int4"), "q", "quantization.quantize"),
    "a policy on a plain arch (accepted)": (set_key("quantization", {"policy": {}}), "plain", "quantization"),
}


@pytest.mark.parametrize(("edit", "which", "expected"), BAD.values(), ids=BAD.keys())
def test_a_crafted_arch_json_is_one_line_naming_file_and_key(exports, tmp_path, edit, which, expected):
    folder = _folder(exports, tmp_path, which)
    _edit(folder, edit)
    with memory_cap():
        message = refuse_load("arch_json", lambda: nas.load_subnet(folder), contains=expected)
    assert str(folder / "arch.json") in message or str(folder / "model.pt") in message


RAW = {  # the file's bytes, not its document
    "NaN num_classes (ValueError)": lambda text: text.replace('"num_classes": 10', '"num_classes": NaN'),
    "nested too deeply (RecursionError)": lambda text: "[" * 100_000 + "]" * 100_000,
    "padded past 1 MiB (accepted)": lambda text: text + " " * (2 << 20),
}


@pytest.mark.parametrize("edit", RAW.values(), ids=RAW.keys())
def test_a_crafted_arch_json_text_is_one_line(exports, tmp_path, edit):
    folder = _folder(exports, tmp_path)
    path = folder / "arch.json"
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    refuse_load("arch_json", lambda: nas.load_subnet(folder), contains=str(path))


def test_weights_that_are_not_finite_are_refused(exports, tmp_path):
    folder = _folder(exports, tmp_path)
    state = torch.load(folder / "model.pt", weights_only=True)
    state["classifier.bias"] = torch.full_like(state["classifier.bias"], math.nan)
    torch.save(state, folder / "model.pt")
    refuse_load("model_pt", lambda: nas.load_subnet(folder), contains="'classifier.bias' holds NaN")


# ------------------------------------------------------------------------------------------ property
SCALARS = st.one_of(
    INT64,
    st.sampled_from([0, -1, 1, 3, 10, 28, 10**7, 10**12, 0.5, 1e300, math.nan, math.inf, None, True, False]),
    ANY_FLOAT,
    st.text(max_size=12),
    st.sampled_from(["", "tiny_mbv3", "ofa_mbv3", "tiny_mbv3+q", "tiny_mbv3+q(int8)", "1", "checkpoint", "int8"]),
)
MUTATION = mutations(["set", "set", "delete", "add", "swap"], nested(SCALARS, list_size=4, key_size=8), depth=3,
                     key_size=12)


@st.composite
def mutated_arch_json(draw, text: str) -> bytes:
    """``arch.json`` with 1-3 values set, deleted, added or swapped for a valid setting of another key, and now
    and then some bytes overwritten or the file cut."""
    def apply(parent, key, op, value, extra):
        if op == "swap" and isinstance(parent, dict):  # a value that is valid somewhere else in the file
            other = sorted(parent)[draw(st.integers(0, len(parent) - 1))]
            parent[key] = copy.deepcopy(parent[other])
        else:
            set_delete_or_add(parent, key, op, value, extra)

    data = json.dumps(mutate(draw, json.loads(text), MUTATION, most=3, apply=apply), indent=1).encode()
    garbage = draw(st.sampled_from(["none"] * 8 + ["bytes", "cut"]))
    if garbage == "bytes":
        data = overwrite_bytes(draw, data, 8)
    elif garbage == "cut":
        data = data[:draw(st.integers(0, len(data)))]
    return data


def test_any_mutated_arch_json_loads_a_module_or_is_one_line(exports, tmp_path):
    folder = _folder(exports, tmp_path)
    path = folder / "arch.json"
    text = path.read_text(encoding="utf-8")
    x = torch.randn(SPACE.input_shape(ARCH), generator=torch.Generator().manual_seed(0))[None]
    reference = nas.load_subnet(folder)(x)
    runs, loaded = [], []

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=mutated_arch_json(text))
    def loads_or_refuses(data: bytes) -> None:
        runs.append(1)
        path.write_bytes(data)
        try:
            with memory_cap():
                module = nas.load_subnet(folder)
        except NASError as err:
            why = check_one_line(str(err))
            assert why is None and str(folder) in str(err), f"{why}: {str(err)[:300]!r}"
            return
        loaded.append(1)  # a mutation that still describes these weights: the same network
        assert not module.training
        with torch.no_grad():
            assert torch.equal(module(x), reference)

    tally_examples("arch_json", runs, loads_or_refuses)
    assert 0 < len(loaded) < len(runs)  # both outcomes were exercised


# --------------------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def checkpoint_obj(tiny_checkpoint):
    return torch.load(tiny_checkpoint / CHECKPOINT_NAME, weights_only=True)


def _forge(tmp_path, checkpoint_obj, tiny_checkpoint, edit):
    """A copy of the tiny `nas train` folder whose checkpoint has ``edit`` applied (real weights kept)."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_checkpoint / "config.json", run / "config.json")
    obj = {**checkpoint_obj, "model": dict(checkpoint_obj["model"]), "meta": copy.deepcopy(checkpoint_obj["meta"])}
    edit(obj)
    torch.save(obj, run / CHECKPOINT_NAME)
    return run


def _meta(key, value):
    return lambda obj: obj["meta"].__setitem__(key, value)


# name: (edit of the checkpoint, what the one line must say); each was accepted (and evaluated) before issue 18
BAD_META = {
    "epoch a string": (_meta("epoch", "x"), "meta.epoch = 'x': expected an integer in 0..1000000"),
    "global_step negative": (_meta("global_step", -5), "meta.global_step = -5"),
    "space unknown": (_meta("space", "nope"), "meta.space = 'nope': expected one of ['autoformer_t', 'ofa_mbv3', "),
    "space a number": (_meta("space", 3), "meta.space = 3"),
    "strategy unknown": (_meta("strategy", "magic"), "meta.strategy = 'magic': expected one of ['ps', 'sandwich']"),
    "val NaN": (_meta("val", {"largest": math.nan}), "meta.val"),
    "val above 1": (_meta("val", {"largest": 2.0}), "meta.val"),
    "rng a number": (_meta("rng", 5), "meta.rng = 5"),
    "config's space another": (lambda obj: obj["meta"]["config"].__setitem__("space", "ofa_mbv3"),
                               "meta.config.space: 'ofa_mbv3' differs from meta.space 'tiny_mbv3'"),
    "world_size zero": (_meta("world_size", 0), "meta.world_size = 0"),
    "model of numbers": (lambda obj: obj["model"].__setitem__("stem.0.weight", 1.5), "model: expected a state dict"),
    "optimizer a list": (lambda obj: obj.__setitem__("optimizer", [1]), "optimizer: expected"),
}


@pytest.mark.parametrize(("edit", "expected"), BAD_META.values(), ids=BAD_META.keys())
def test_checkpoint_metadata_is_checked_at_load(tmp_path, checkpoint_obj, tiny_checkpoint, edit, expected):
    run = _forge(tmp_path, checkpoint_obj, tiny_checkpoint, edit)
    message = refuse_load("checkpoint_pt", lambda: load_checkpoint(run), contains=expected)
    assert str(run / CHECKPOINT_NAME) in message


@pytest.mark.parametrize("case", ["epoch a string", "space unknown", "val NaN", "rng a number"])
def test_nas_eval_refuses_a_forged_checkpoint_with_one_line(tmp_path, checkpoint_obj, tiny_checkpoint, hostile_cli,
                                                            case):
    edit, expected = BAD_META[case]
    run = _forge(tmp_path, checkpoint_obj, tiny_checkpoint, edit)
    hostile_cli(["eval", "--checkpoint", str(run), "--arch", json.dumps(ARCH.to_dict())], watch=[run],
                contains=expected)


def test_nas_export_refuses_a_forged_checkpoint_with_one_line(tmp_path, checkpoint_obj, tiny_checkpoint,
                                                              hostile_cli):
    edit, expected = BAD_META["strategy unknown"]
    run = _forge(tmp_path, checkpoint_obj, tiny_checkpoint, edit)
    out = tmp_path / "out"
    hostile_cli(["export", "--checkpoint", str(run), "--arch", json.dumps(ARCH.to_dict()), "--format", "torch",
                 "--out", str(out), "--quiet", "--repeats", "1"], watch=[run], contains=expected)
    assert not out.exists()

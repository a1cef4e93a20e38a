"""Datasets, arrays files, the offline error, preprocessing and the one-class protocol."""

import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

import ust.data as data
from ust.data import DataUnavailableError, load_dataset

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
has_mnist = pytest.mark.skipif(not (SHARED / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file(),
                               reason=f"real MNIST not found at {SHARED}/MNIST/raw (only on the development machine)")

# np.bincount(load_digits().target)
DIGIT_COUNTS = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist", root=SHARED, download=False)


@pytest.fixture
def no_download(monkeypatch):
    """Fail the test if anything tries torchvision's download."""
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.mnist as mnist

    def forbidden(*args, **kwargs):
        raise AssertionError("a test tried to download")
    monkeypatch.setattr(mnist, "download_and_extract_archive", forbidden)
    monkeypatch.setattr(cifar, "download_and_extract_archive", forbidden)


# --------------------------------------------------------------------------- roots

def test_data_roots_argument_environment_default(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("UST_DATA", raising=False)
    assert data.data_roots() == [Path("data")]
    monkeypatch.setenv("UST_DATA", os.pathsep.join(["../shared/datasets", "~/.cache/ust"]))
    assert data.data_roots() == [Path("../shared/datasets"), tmp_path / ".cache" / "ust"]
    assert data.data_roots(f"/a{os.pathsep}/b") == [Path("/a"), Path("/b")]  # the argument wins
    assert data.data_roots(Path("~/x")) == [tmp_path / "x"]


# --------------------------------------------------------------------------- digits

def test_digits_in_mnist_layout(digits):
    train, test = digits.train, digits.test
    assert (len(train), len(test)) == (1198, 599) and len(train) + len(test) == 1797
    assert train.images.shape[1:] == (28, 28, 1) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.classes == tuple("0123456789")
    for x in (train.images, test.images):  # 4 px of black padding, white digit on black
        assert x[:, :4].max() == x[:, -4:].max() == x[:, :, :4].max() == x[:, :, -4:].max() == 0
    assert train.images.max() == 255  # 16 -> 255
    assert digits.name == "digits" and digits.stand_in_for is None
    assert "scikit-learn" in train.description and "1,797" in train.description


def test_digits_stratified_split_counts(digits):
    test_counts = np.bincount(digits.test.labels, minlength=10)
    # stratified 1/3: each class's test count is its count / 3 rounded
    assert test_counts.tolist() == [59, 61, 59, 61, 60, 61, 60, 60, 58, 60]
    assert (np.bincount(digits.train.labels, minlength=10) + test_counts).tolist() == DIGIT_COUNTS.tolist()


def test_digits_pixel_values_by_hand(digits):
    # load_digits().images[0] (a zero, in the training part) starts [[0, 0, 5, 13, ...], [0, 0, 13, 15, ...]].
    # 20x20 pixel (2, 7) samples the 8x8 image at (0.5, 2.5): mean of 5, 13, 13, 15 = 11.5 -> 11.5 * 255 / 16
    # = 183.28; after the 4 px padding it is pixel (6, 11).
    assert digits.train.labels[0] == 0
    assert digits.train.images[0, 6, 11, 0] == 183
    full = data.datasets._digits_to_mnist_layout(np.full((1, 8, 8), 16.0))
    assert full[0, 4:24, 4:24].min() == 255 and full.sum() == 20 * 20 * 255


# --------------------------------------------------------------------------- MNIST

@has_mnist
def test_real_mnist_from_torchvision_layout(mnist):
    assert mnist.train.images.shape == (60000, 28, 28, 1) and mnist.test.images.shape == (10000, 28, 28, 1)
    assert mnist.train.images.dtype == np.uint8 and mnist.train.labels.dtype == np.int64
    assert mnist.train.labels[0] == 5 and mnist.test.labels[0] == 7
    assert mnist.classes == tuple("0123456789")
    assert "MNIST training split (60,000 images)" in mnist.train.description
    assert str(SHARED / "MNIST" / "raw") in mnist.train.description


@has_mnist
def test_mnist_found_in_a_later_root_of_ust_data(monkeypatch, tmp_path, no_download):
    monkeypatch.setenv("UST_DATA", os.pathsep.join([str(tmp_path / "empty"), str(SHARED)]))
    splits = data.load_mnist_or_digits(download=False)
    assert splits.name == "mnist" and splits.stand_in_for is None and len(splits.test) == 10000


@has_mnist
def test_stratified_subset_of_mnist_test(mnist):
    idx = data.stratified_subset(mnist.test.labels, 2000)
    # MNIST test counts 980 1135 1032 1010 982 892 958 1028 974 1009, times 0.2, largest remainders rounded up
    assert np.bincount(mnist.test.labels[idx]).tolist() == [196, 227, 206, 202, 196, 178, 192, 206, 195, 202]
    assert np.array_equal(idx, data.stratified_subset(mnist.test.labels, 2000))
    assert len(np.unique(idx)) == 2000 and np.all(np.diff(idx) > 0)


def test_mnist_or_digits_falls_back_with_a_notice(tmp_path, capsys, no_download):
    with pytest.warns(UserWarning, match="stand-in for MNIST"):
        splits = data.load_mnist_or_digits(root=tmp_path, download=False)
    assert splits.name == "digits" and splits.stand_in_for == "mnist"
    out = capsys.readouterr().out
    assert "MNIST is not available here" in out and "scikit-learn digits (1,797 images)" in out
    assert "stands in for MNIST" in splits.description


# --------------------------------------------------------------------------- offline error

def _failing_download(calls):
    def download_and_extract_archive(url, download_root, filename=None, md5=None, **kwargs):
        calls.append(url)
        Path(download_root).mkdir(parents=True, exist_ok=True)
        (Path(download_root) / (filename or "partial")).write_bytes(b"half a file")
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    return download_and_extract_archive


@pytest.mark.parametrize("name, module", [("mnist", "mnist"), ("cifar10", "cifar")])
def test_offline_error_lists_every_way_and_leaves_nothing(monkeypatch, tmp_path, name, module):
    import importlib
    calls = []
    monkeypatch.setattr(importlib.import_module(f"torchvision.datasets.{module}"), "download_and_extract_archive",
                        _failing_download(calls))
    root = tmp_path / "new" / "root"
    with pytest.raises(DataUnavailableError) as info:
        load_dataset(name, root=root)  # download=None: try
    assert calls, "the download was not attempted"
    assert not (tmp_path / "new").exists(), "the failed download left folders behind"
    message = str(info.value)
    layout = "MNIST/raw" if name == "mnist" else "cifar-10-batches-py"
    for part in (layout, str(root), "UST_DATA", f"{name}.npz", "x_train, y_train, x_test, y_test",
                 "load_dataset('digits')", "Temporary failure in name resolution"):
        assert part in message, part
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no torchvision traceback

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(DataUnavailableError):
        load_dataset(name, root=existing, download=True)
    assert sorted(p.name for p in existing.iterdir()) == ["notes.txt"]


def test_download_false_never_downloads(tmp_path, no_download):
    with pytest.raises(DataUnavailableError, match="download=False, so nothing was downloaded"):
        load_dataset("cifar10", root=tmp_path, download=False)
    assert list(tmp_path.iterdir()) == []


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'fashion'.*'mnist', 'cifar10', 'digits'.*\.npz"):
        load_dataset("fashion")


# --------------------------------------------------------------------------- arrays files

def _arrays(tmp_path, name="toy.npz", **changes):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8), y_train=np.array([0, 1, 1, 0, 1]),
                  x_test=rng.integers(0, 256, (3, 6, 7, 3), dtype=np.uint8), y_test=np.array([1, 0, 1], np.int16),
                  classes=np.array(["cat", "dog"]))
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / name
    np.savez(path, **arrays)
    return path, arrays


def test_arrays_file_round_trip(tmp_path):
    path, arrays = _arrays(tmp_path)
    splits = load_dataset(path)
    assert splits.name == "toy" and splits.classes == ("cat", "dog")
    assert np.array_equal(splits.train.images, arrays["x_train"]) and np.array_equal(splits.test.images,
                                                                                     arrays["x_test"])
    assert splits.test.labels.dtype == np.int64 and splits.test.labels.tolist() == [1, 0, 1]
    assert str(path) in splits.test.description


def test_arrays_file_in_a_root_and_grayscale_without_classes(tmp_path):
    gray = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    _arrays(tmp_path, "cifar10.npz", x_train=gray, x_test=gray, y_train=np.array([0, 2]),
            y_test=np.array([2, 1]), classes=None)
    splits = load_dataset("cifar10", root=tmp_path, download=False)
    assert splits.name == "cifar10" and splits.train.images.shape == (2, 4, 4, 1)
    assert splits.classes == ("0", "1", "2") and splits.train.images[1, 0, 0, 0] == 16


def test_arrays_file_errors(tmp_path):
    path, _ = _arrays(tmp_path, y_test=None)
    with pytest.raises(ValueError, match=r"lacks \['y_test'\].*x_train, y_train, x_test, y_test"):
        load_dataset(path)
    path, _ = _arrays(tmp_path, x_train=np.zeros((5, 6, 7, 3), np.float32))
    with pytest.raises(ValueError, match=r"x_train .* dtype float32.*uint8.*astype\(np.uint8\)"):
        load_dataset(path)
    path, _ = _arrays(tmp_path, classes=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="plain .npz"):
        load_dataset(path)
    path, _ = _arrays(tmp_path, y_train=np.array([0, 1, 5, 0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in 0..1"):
        load_dataset(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(tmp_path / "missing.npz")


def test_image_arrays_validation():
    with pytest.raises(ValueError, match=r"uint8.*\(x \* 255\)"):
        data.ImageArrays(np.zeros((2, 4, 4, 1), np.float32), np.zeros(2, np.int64), ("a",), "x")
    with pytest.raises(ValueError, match=r"images\[\.\.\., None\]"):
        data.ImageArrays(np.zeros((2, 4, 4), np.uint8), np.zeros(2, np.int64), ("a",), "x")
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        data.ImageArrays(np.zeros((2, 4, 4, 1), np.uint8), np.zeros(3, np.int64), ("a",), "x")


# --------------------------------------------------------------------------- preprocessing

def test_preprocess_values():
    x = np.array([[[[0], [51]], [[255], [255]]]], dtype=np.uint8)  # (1, 2, 2, 1)
    out = data.preprocess(x)
    assert out.dtype == torch.float32 and out.shape == (1, 1, 2, 2)
    assert out.flatten().tolist() == pytest.approx([0.0, 0.2, 1.0, 1.0])
    rgb = data.preprocess(x, channels=3)
    assert rgb.shape == (1, 3, 2, 2) and torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 1], rgb[:, 2])
    # downscaling 2x2 -> 1x1 with antialiasing averages the four pixels: (0 + 51 + 255 + 255) / 4 / 255
    assert data.preprocess(x, image_size=1).item() == pytest.approx(561 / 4 / 255)
    red = np.array([[[[255, 0, 0]]]], dtype=np.uint8)
    assert data.preprocess(red, channels=1).item() == pytest.approx(0.299)  # BT.601 luma
    assert data.preprocess(np.zeros((3, 5, 5), np.uint8), image_size=(4, 6), channels=3).shape == (3, 3, 4, 6)
    with pytest.raises(ValueError, match="uint8"):
        data.preprocess(np.zeros((1, 2, 2, 1), np.float32))


def test_resize_images_is_the_resize_step_of_preprocess():
    x = np.random.default_rng(0).integers(0, 256, (2, 7, 9, 3), dtype=np.uint8)
    torch.testing.assert_close(data.resize_images(data.preprocess(x), (14, 5)), data.preprocess(x, image_size=(14, 5)),
                               rtol=0, atol=0)
    same = data.preprocess(x)
    assert data.resize_images(same, (7, 9)) is same                         # nothing to do
    assert data.resize_images(torch.full((1, 1, 2, 2), 0.3), 1).item() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="preprocess"):
        data.resize_images(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), 4)


# --------------------------------------------------------------------------- one-class protocol

def test_one_class_split_counts_and_labels(digits):
    threes = np.flatnonzero(digits.train.labels == 3)
    split = data.one_class_split(digits, 3)
    assert len(threes) == 122 and len(split.train) + len(split.val) == 122
    assert len(split.val) == 12  # round(0.1 * 122)
    assert split.test.shape == (599, 1, 28, 28) and split.train.dtype == torch.float32
    assert torch.equal(split.test_classes, torch.from_numpy(digits.test.labels))
    assert torch.equal(split.test_labels, (split.test_classes != 3).long())
    assert int(split.test_labels.sum()) == 599 - 61
    # train and val are disjoint and together exactly the 3s of the training split
    as_set = lambda t: {bytes((x * 255).round().to(torch.uint8).numpy()) for x in t}  # noqa: E731
    expected = {bytes(x.transpose(2, 0, 1)) for x in digits.train.images[threes]}
    assert as_set(split.train) | as_set(split.val) == expected
    assert not as_set(split.train) & as_set(split.val)
    assert split.normal_class == 3 and split.class_name == "3"
    assert "normal class 3" in split.description and "scikit-learn" in split.description


def test_one_class_split_options(digits):
    a = data.one_class_split(digits, "3", channels=3, image_size=32, max_train=20, max_test=100, seed=1)
    assert a.train.shape == (20, 3, 32, 32) and len(a.val) == 12 and a.test.shape == (100, 3, 32, 32)
    assert torch.equal(a.train[:, 0], a.train[:, 2])
    b = data.one_class_split(digits, 3, channels=3, image_size=32, max_train=20, max_test=100, seed=1)
    assert torch.equal(a.val, b.val) and torch.equal(a.train, b.train)
    c = data.one_class_split(digits, 3, seed=2)
    assert not torch.equal(c.val, data.one_class_split(digits, 3, seed=1).val)
    stand_in = data.DatasetSplits(digits.train, digits.test, "digits", stand_in_for="mnist")
    assert "stands in for MNIST" in data.one_class_split(stand_in, 0).description


def test_one_class_split_by_class_name_and_errors(tmp_path, digits):
    path, _ = _arrays(tmp_path)
    split = data.one_class_split(load_dataset(path), "dog")
    assert split.normal_class == 1 and len(split.train) + len(split.val) == 3
    assert split.test_labels.tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match=r"unknown normal class 'horse'.*0 'cat', 1 'dog'"):
        data.one_class_split(load_dataset(path), "horse")
    with pytest.raises(ValueError, match="unknown normal class 10"):
        data.one_class_split(digits, 10)
    with pytest.raises(ValueError, match="val_fraction"):
        data.one_class_split(digits, 3, val_fraction=0)


def test_stratified_subset_by_hand():
    labels = np.array([0] * 6 + [1] * 3 + [2])
    # quotas 3, 1.5, 0.5: floors 3, 1, 0 and the one left over goes to the smaller label of the tie
    idx = data.stratified_subset(labels, 5, seed=0)
    assert np.bincount(labels[idx], minlength=3).tolist() == [3, 2, 0]
    assert np.array_equal(idx, data.stratified_subset(labels, 5, seed=0)) and idx.dtype == np.int64
    assert data.stratified_subset(labels, 10).tolist() == list(range(10))
    with pytest.raises(ValueError, match="between 1 and the number of labels"):
        data.stratified_subset(labels, 11)

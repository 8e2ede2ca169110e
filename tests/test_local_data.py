"""Loaders of real datasets from local files: layouts, corrupt files, the CIFAR-10 copy."""

import gzip
import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from layerwise_keras import datasets
from layerwise_keras.datasets.local import DataError, read_local

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CIFAR = os.path.join(ROOT, os.pardir, "shared", "data", "cifar10")
needs_cifar = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SHARED_CIFAR, "exact_subset.npz")),
    reason=f"the local CIFAR-10 copy is not at {SHARED_CIFAR}",
)


def _fake_cifar_npz(folder, n_test=20):
    rng = np.random.default_rng(0)
    for name, n in (("train_a.npz", 25000), ("train_b.npz", 25000)):
        np.savez(folder / name, x=np.zeros((n, 32, 32, 3), np.uint8), y=np.arange(n) % 10)
    y = np.sort(np.arange(10000) % 10)
    np.savez(folder / "test.npz", x=rng.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8), y=y.astype(np.uint8))


@needs_cifar
def test_cifar10_local_copy_splits_and_exact_subset():
    x, y = datasets.load_arrays("cifar10", "test_exact", SHARED_CIFAR)
    assert x.shape == (1000, 32, 32, 3) and x.dtype == np.uint8
    assert y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # the official first test labels
    xj, yj = datasets.load_arrays("cifar10", "test_exact_jpeg", os.path.dirname(SHARED_CIFAR))
    np.testing.assert_array_equal(yj, y)
    # The same images, JPEG re-encoded: the copy's README measured 5.8 grey levels mean abs error.
    assert np.abs(x.astype(int) - xj.astype(int)).mean() < 8
    # ... and every exact image is nearer its JPEG twin than any other of the first 50.
    d = np.abs(x[:50, None].astype(np.int32) - xj[None, :50].astype(np.int32)).mean((2, 3, 4))
    assert (d.argmin(1) == np.arange(50)).all()
    xt, yt = datasets.load_arrays("cifar10", "train_exact", SHARED_CIFAR)
    assert xt.shape == (4000, 32, 32, 3) and yt[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]


@needs_cifar
def test_cifar10_load_dataset_normalisation_and_augmentation(monkeypatch):
    monkeypatch.setenv(datasets.DATA_ENV, SHARED_CIFAR)
    ds = datasets.load("cifar10", "test_exact", batch_size=250)
    images, labels = next(iter(ds))
    assert images.shape == (250, 32, 32, 3) and images.dtype == tf.float32 and labels.dtype == tf.int64
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    raw, _ = datasets.load_arrays("cifar10", "test_exact")
    std = datasets.normalize_images(raw, "standardize", mean=[125.0, 123.0, 114.0], std=[63.0, 62.0, 66.0])
    assert abs(float(std.mean())) < 0.5
    aug = datasets.load("cifar10", "test_exact", batch_size=1000, augment=True, shuffle=False, seed=3)
    a1 = next(iter(aug))[0].numpy()
    assert a1.shape == (1000, 32, 32, 3)
    assert not np.array_equal(a1, raw / 255.0)  # crops/flips changed some images


def test_cifar10_python_batches_layout(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (10000, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": list(rng.integers(0, 10, 10000))}, f)
    x, y = read_local("cifar10", "test", tmp_path)
    assert x.shape == (10000, 32, 32, 3)
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f)
    # Channel-major rows become HWC images.
    np.testing.assert_array_equal(x[0, :, :, 1], raw[b"data"][0, 1024:2048].reshape(32, 32))
    with pytest.raises(DataError, match="npz layout"):
        read_local("cifar10", "test_exact", tmp_path)


def test_truncated_npz_is_a_clear_error(tmp_path):
    _fake_cifar_npz(tmp_path)
    data = (tmp_path / "test.npz").read_bytes()
    (tmp_path / "test.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"test\.npz is unreadable or corrupt.*Expected layout"):
        read_local("cifar10", "test", tmp_path)


def test_missing_file_wrong_shape_and_bad_labels(tmp_path):
    with pytest.raises(DataError, match="No CIFAR-10 files"):
        read_local("cifar10", "train", tmp_path)
    _fake_cifar_npz(tmp_path)
    (tmp_path / "train_b.npz").unlink()
    with pytest.raises(DataError, match=r"Missing file .*train_b\.npz"):
        read_local("cifar10", "train", tmp_path)
    np.savez(tmp_path / "test.npz", x=np.zeros((10000, 32, 32), np.uint8), y=np.zeros(10000, np.uint8))
    with pytest.raises(DataError, match=r"uint8 \[N, 32, 32, 3\]"):
        read_local("cifar10", "test", tmp_path)
    np.savez(tmp_path / "test.npz", x=np.zeros((10000, 32, 32, 3), np.uint8), y=np.full(10000, 12, np.uint8))
    with pytest.raises(DataError, match="labels must be in 0..9"):
        read_local("cifar10", "test", tmp_path)


def test_unreadable_data_dir_and_unknown_names(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        datasets.load_arrays("cifar10", "train", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="Unknown split"):
        datasets.load_arrays("cifar10", "validation", tmp_path)
    with pytest.raises(ValueError, match="Unknown dataset"):
        datasets.load_arrays("imagenet", "train", tmp_path)
    with pytest.raises(ValueError, match="normalize"):
        datasets.load("cifar10", "train", tmp_path, normalize="zscore")


def test_no_data_dir_and_no_tfds_says_what_to_do(monkeypatch):
    monkeypatch.delenv(datasets.DATA_ENV, raising=False)
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="data_dir"):
            datasets.load_arrays("cifar10", "train")
    else:  # tfds is installed but no network is reachable here
        with pytest.raises(DataError, match="data_dir"):
            datasets.load_arrays("cifar10", "train")


def _write_idx(path, array, compress):
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_files(tmp_path, compress):
    rng = np.random.default_rng(2)
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    x = rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 10000).astype(np.uint8)
    _write_idx(folder / "t10k-images-idx3-ubyte", x, compress)
    _write_idx(folder / "t10k-labels-idx1-ubyte", y, compress)
    images, labels = datasets.load_arrays("fashion_mnist", "test", tmp_path)
    assert images.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(images[..., 0], x)
    np.testing.assert_array_equal(labels, y)


def test_mnist_npz_and_truncated_idx(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((60000, 28, 28), np.uint8), y_train=np.zeros(60000, np.uint8),
             x_test=np.zeros((10000, 28, 28), np.uint8), y_test=np.ones(10000, np.uint8))
    x, y = datasets.load_arrays("mnist", "test", tmp_path)
    assert x.shape == (10000, 28, 28, 1) and (y == 1).all()
    other = tmp_path / "idx"
    other.mkdir()
    _write_idx(other / "train-images-idx3-ubyte", np.zeros((60000, 28, 28), np.uint8), False)
    data = (other / "train-images-idx3-ubyte").read_bytes()
    (other / "train-images-idx3-ubyte").write_bytes(data[:-100])
    _write_idx(other / "train-labels-idx1-ubyte", np.zeros(60000, np.uint8), False)
    with pytest.raises(DataError, match="truncated IDX"):
        datasets.load_arrays("mnist", "train", other)


@needs_cifar
def test_pipeline_splits_of_cifar10_are_labelled_and_held_out():
    from layerwise_keras.runs.pipeline import load_splits

    config = {"name": "cifar10", "train": 300, "val": 100, "test": 200,
              "options": {"data_dir": SHARED_CIFAR, "normalize": "unit"}}
    splits = load_splits(config, seed=0)
    assert splits["x_train"].shape == (300, 32, 32, 3) and splits["x_val"].shape == (100, 32, 32, 3)
    assert splits["data_label"] == "CIFAR-10 (JPEG re-encoded local copy)"
    assert splits["latents_test"] is None and splits["num_classes"] == 10
    # The class-major test file is subsampled at random, not by prefix.
    assert len(np.unique(splits["y_test"])) == 10
    # Validation images are the last official train images, disjoint from the training prefix.
    x_all, _ = datasets.load_arrays("cifar10", "train", SHARED_CIFAR)
    np.testing.assert_allclose(splits["x_val"][-1], x_all[-1] / 255.0)
    exact = load_splits(dict(config, options={"data_dir": SHARED_CIFAR, "test_split": "test_exact"}), seed=0)
    assert exact["data_label"].endswith("byte-exact official test images")
    with pytest.raises(ValueError, match="do not fit"):
        load_splits(dict(config, train=60000), seed=0)
    with pytest.raises(ValueError, match="unknown options"):
        load_splits(dict(config, options={"datadir": SHARED_CIFAR}), seed=0)

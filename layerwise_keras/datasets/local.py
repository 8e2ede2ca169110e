"""Readers for image datasets stored as local files (NumPy only, no network).

`layerwise_keras.datasets.load` uses these when a data folder is given (or
`LAYERWISE_KERAS_DATA` is set), because `tensorflow_datasets` and
`keras.datasets` download from the internet. Layouts understood:

CIFAR-10
    * the `.npz` layout of the project's shared copy: `train_a.npz`,
      `train_b.npz` (official train indices 0..24999 and 25000..49999),
      `test.npz` (10,000 test images in class-major order), each with `x`
      uint8 `[N, 32, 32, 3]` and `y` `[N]`; optionally `exact_subset.npz`
      (byte-exact official pixels: `x_train, y_train, train_index, x_test,
      y_test, test_index`). That copy's train/test pixels are JPEG
      re-encoded: figures computed on it must say so.
    * the official "CIFAR-10 python version": `data_batch_1..5` and
      `test_batch` (pickled dicts with `data` uint8 `[N, 3072]` and
      `labels`), directly in the folder or in `cifar-10-batches-py/`.

MNIST, Fashion-MNIST
    * Keras' `mnist.npz` / `fashion_mnist.npz` (`x_train, y_train, x_test,
      y_test`), or the four IDX files (`train-images-idx3-ubyte[.gz]`, ...).

Every reader checks shapes, dtypes, label ranges and counts, and raises a
`DataError` naming the file and the expected layout when something is off.
"""

import gzip
import os
import pickle

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)

CIFAR10_NPZ_LAYOUT = (
    "train_a.npz + train_b.npz (x uint8 [25000,32,32,3], y [25000] each), test.npz (x uint8 [10000,32,32,3], "
    "y [10000]), optional exact_subset.npz"
)
CIFAR10_PY_LAYOUT = "data_batch_1 .. data_batch_5 and test_batch (pickled dicts with 'data' uint8 [N,3072] and 'labels')"
MNIST_LAYOUT = (
    "{name}.npz with x_train uint8 [60000,28,28], y_train, x_test uint8 [10000,28,28], y_test; or the IDX files "
    "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"
)

SPLITS = {
    "cifar10": ("train", "test", "test_exact", "test_exact_jpeg", "train_exact"),
    "mnist": ("train", "test"),
    "fashion_mnist": ("train", "test"),
}


class DataError(ValueError):
    """A local dataset file is missing, unreadable or not in the expected layout."""


def _check_arrays(x, y, path, image_shape, n=None, num_classes=10, layout=""):
    if x.dtype != np.uint8 or x.ndim != 1 + len(image_shape) or tuple(x.shape[1:]) != tuple(image_shape):
        raise DataError(
            f"{path}: images must be uint8 [N, {', '.join(map(str, image_shape))}], got {x.dtype} {x.shape}. "
            f"Expected layout: {layout}"
        )
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: labels must be 1-D with one label per image ({len(x)}), got shape {y.shape}.")
    if n is not None and len(x) != n:
        raise DataError(f"{path}: expected {n} images, found {len(x)}. Expected layout: {layout}")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{path}: labels must be in 0..{num_classes - 1}, found {y.min()}..{y.max()}.")
    return x, y


def _load_npz(path, keys, layout):
    if not os.path.isfile(path):
        raise DataError(f"Missing file {path}. Expected layout: {layout}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing} (has {data.files}). Expected layout: {layout}")
            return {k: data[k] for k in keys}
    except DataError:
        raise
    except Exception as err:  # zipfile.BadZipFile, EOFError, ValueError, OSError ...
        raise DataError(f"{path} is unreadable or corrupt ({type(err).__name__}: {err}). Expected layout: {layout}") from err


def _cifar10_npz(folder, split):
    layout = CIFAR10_NPZ_LAYOUT
    if split == "train":
        parts = []
        for name in ("train_a.npz", "train_b.npz"):
            path = os.path.join(folder, name)
            d = _load_npz(path, ("x", "y"), layout)
            parts.append(_check_arrays(d["x"], d["y"], path, (32, 32, 3), 25000, layout=layout))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if split == "test":
        path = os.path.join(folder, "test.npz")
        d = _load_npz(path, ("x", "y"), layout)
        return _check_arrays(d["x"], d["y"], path, (32, 32, 3), 10000, layout=layout)
    path = os.path.join(folder, "exact_subset.npz")
    keys = ("x_train", "y_train", "train_index", "x_test", "y_test", "test_index")
    d = _load_npz(path, keys, layout)
    if split == "train_exact":
        return _check_arrays(d["x_train"], d["y_train"], path, (32, 32, 3), layout=layout)
    x_exact, y_exact = _check_arrays(d["x_test"], d["y_test"], path, (32, 32, 3), layout=layout)
    if split == "test_exact":
        return x_exact, y_exact
    # test_exact_jpeg: the same official test images, taken from the JPEG copy.
    return _cifar10_jpeg_of_exact(folder, d["test_index"], y_exact)


def _cifar10_jpeg_of_exact(folder, test_index, y_exact):
    """Finds the exact subset's test images in the class-major JPEG test set.

    test.npz keeps the official order within each class, and the exact subset
    holds the official test images 0..k-1, so official image i (label c) sits
    at `start(c) + #{j < i : y_j = c}` in test.npz.
    """
    if not np.array_equal(np.sort(test_index), np.arange(len(test_index))) or not np.array_equal(
        test_index, np.sort(test_index)
    ):
        raise DataError(
            f"{os.path.join(folder, 'exact_subset.npz')}: test_index must be the official test indices 0..k-1 in order."
        )
    x_jpeg, y_jpeg = _cifar10_npz(folder, "test")
    if np.any(np.diff(y_jpeg) < 0):
        raise DataError(f"{os.path.join(folder, 'test.npz')}: expected class-major order (labels sorted).")
    starts = np.searchsorted(y_jpeg, np.arange(10))
    seen = np.zeros(10, dtype=np.int64)
    positions = np.empty(len(y_exact), dtype=np.int64)
    for i, c in enumerate(y_exact):
        positions[i] = starts[c] + seen[c]
        seen[c] += 1
    return x_jpeg[positions], y_jpeg[positions]


def _unpickle(path):
    if not os.path.isfile(path):
        raise DataError(f"Missing file {path}. Expected layout: {CIFAR10_PY_LAYOUT}")
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as err:
        raise DataError(f"{path} is unreadable or corrupt ({type(err).__name__}: {err}). "
                        f"Expected layout: {CIFAR10_PY_LAYOUT}") from err


def _cifar10_python(folder, split):
    if split not in ("train", "test"):
        raise DataError(f"split {split!r} needs the project's .npz layout ({CIFAR10_NPZ_LAYOUT}); {folder} has the python batches.")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        path = os.path.join(folder, name)
        batch = _unpickle(path)
        data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
        labels = batch.get(b"labels", batch.get("labels")) if isinstance(batch, dict) else None
        if data is None or labels is None:
            raise DataError(f"{path}: expected a dict with 'data' and 'labels'. Expected layout: {CIFAR10_PY_LAYOUT}")
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{path}: 'data' must be uint8 [N, 3072], got {data.dtype} {data.shape}.")
        x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        x, y = _check_arrays(x, np.asarray(labels), path, (32, 32, 3), 10000, layout=CIFAR10_PY_LAYOUT)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except Exception as err:
        raise DataError(f"{path} is unreadable or corrupt ({type(err).__name__}: {err}).") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: truncated IDX file ({body.size} bytes of data, header says {int(np.prod(dims))}).")
    return body.reshape(dims)


def _find(folder, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise DataError(f"Missing file {os.path.join(folder, stem)}[.gz]. Expected layout: {MNIST_LAYOUT}")


def _mnist_like(folder, name, split):
    layout = MNIST_LAYOUT.format(name=name)
    npz = os.path.join(folder, f"{name}.npz")
    n = 60000 if split == "train" else 10000
    if os.path.isfile(npz):
        d = _load_npz(npz, (f"x_{split}", f"y_{split}"), layout)
        return _check_arrays(d[f"x_{split}"], d[f"y_{split}"], npz, (28, 28), n, layout=layout)
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
    labels = _read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
    return _check_arrays(images, labels, folder, (28, 28), n, layout=layout)


def resolve_folder(name, data_dir):
    """`data_dir` itself, or `data_dir/name` when the files live in a sub-folder."""
    if not os.path.isdir(data_dir):
        raise DataError(f"Data folder {data_dir} does not exist or is not a folder.")
    if not os.access(data_dir, os.R_OK | os.X_OK):
        raise DataError(f"Data folder {data_dir} is not readable.")
    sub = os.path.join(data_dir, name)
    if os.path.isdir(sub):
        return sub
    return data_dir


def read_local(name, split, data_dir):
    """Reads one split of a dataset from local files.

    Args:
        name: `"cifar10"`, `"mnist"` or `"fashion_mnist"`.
        split: one of `SPLITS[name]`. For CIFAR-10: `"train"` (50,000),
            `"test"` (10,000), `"test_exact"` (the 1,000 byte-exact official
            test images 0..999), `"test_exact_jpeg"` (the same 1,000 images
            from the JPEG copy), `"train_exact"` (4,000 byte-exact train
            images); the last three need the `.npz` layout.
        data_dir: the folder holding the files (or a parent holding
            `name/`).

    Returns:
        `(images, labels)`: uint8 `[N, H, W, C]` (C = 1 for MNIST-like) and
        int64 `[N]`.

    Example:

    A stand-in for Keras' `mnist.npz` (its test split only: 10,000 blank
    images):

    >>> import os
    >>> np.savez(os.path.join(tmp_dir, "mnist.npz"), x_test=np.zeros((10000, 28, 28), np.uint8),
    ...          y_test=np.arange(10000) % 10)
    >>> x, y = read_local("mnist", "test", tmp_dir)
    >>> x.shape, x.dtype, y[:3]
    ((10000, 28, 28, 1), dtype('uint8'), array([0, 1, 2]))
    """
    if name not in SPLITS:
        raise ValueError(f"Unknown dataset {name!r}; local files are supported for {sorted(SPLITS)}.")
    if split not in SPLITS[name]:
        raise ValueError(f"Unknown split {split!r} for {name}; expected one of {SPLITS[name]}.")
    folder = resolve_folder(name, os.fspath(data_dir))
    if name == "cifar10":
        py = os.path.join(folder, "cifar-10-batches-py")
        if os.path.isfile(os.path.join(folder, "train_a.npz")) or os.path.isfile(os.path.join(folder, "test.npz")):
            return _cifar10_npz(folder, split)
        if os.path.isfile(os.path.join(folder, "data_batch_1")):
            return _cifar10_python(folder, split)
        if os.path.isfile(os.path.join(py, "data_batch_1")):
            return _cifar10_python(py, split)
        raise DataError(
            f"No CIFAR-10 files in {folder}. Expected either {CIFAR10_NPZ_LAYOUT}, or {CIFAR10_PY_LAYOUT} "
            "(directly or in cifar-10-batches-py/)."
        )
    x, y = _mnist_like(folder, name, split)
    return x[..., None], y

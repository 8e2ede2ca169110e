"""Real image datasets (CIFAR-10, MNIST, Fashion-MNIST) as NumPy arrays, from local files.
"""

import os

import numpy as np

from layerwise_keras.datasets.local import DataError, read_local


DATA_ENV = "LAYERWISE_KERAS_DATA"


NORMALIZATIONS = ("unit", "standardize", "none")


def resolve_data_dir(data_dir):
    return data_dir if data_dir is not None else os.environ.get(DATA_ENV) or None


def load_arrays(name, split="train", data_dir=None):
    """Loads one split of a real image dataset as NumPy arrays.

    With `data_dir` (or the `LAYERWISE_KERAS_DATA` environment variable) the
    files are read locally (`layerwise_keras.datasets.local` lists the layouts);
    without either, `tensorflow_datasets` is tried, which needs it installed
    and, the first time, network access.

    Args:
        name: `"cifar10"`, `"mnist"` or `"fashion_mnist"`.
        split: `"train"`, `"test"`, and for CIFAR-10's local `.npz` copy also
            `"test_exact"`, `"test_exact_jpeg"`, `"train_exact"`.
        data_dir: folder with the files, or None.

    Returns:
        `(images, labels)`: uint8 `[N, H, W, C]` and int64 `[N]`.

    Example:

    A stand-in for Keras' `fashion_mnist.npz` (its test split only: 10,000
    blank images):

    >>> import os
    >>> np.savez(os.path.join(tmp_dir, "fashion_mnist.npz"), x_test=np.zeros((10000, 28, 28), np.uint8),
    ...          y_test=np.arange(10000) % 10)
    >>> x, y = load_arrays("fashion_mnist", "test", data_dir=tmp_dir)
    >>> x.shape, x.dtype, y.shape
    ((10000, 28, 28, 1), dtype('uint8'), (10000,))
    """
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        return read_local(name, split, folder)
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataError(
            f"Cannot load {name!r}: no data_dir given, {DATA_ENV} is not set and tensorflow_datasets is not "
            f"installed. Pass data_dir=FOLDER (or set {DATA_ENV}) pointing at local files."
        ) from err
    try:
        x, y = tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, as_supervised=True))
    except Exception as err:  # no network, unknown split, ...
        raise DataError(
            f"tensorflow_datasets could not load {name!r} split {split!r} ({type(err).__name__}: {err}). "
            f"Without network access pass data_dir=FOLDER (or set {DATA_ENV}) pointing at local files."
        ) from err
    return np.asarray(x, dtype=np.uint8), np.asarray(y, dtype=np.int64)


_TRAIN_STATS = {}


def normalize_images(x, normalize="unit", mean=None, std=None, name=None, data_dir=None):
    """Converts uint8 images to float32 as `load` does.

    Args:
        x: uint8 (or float, 0..255) images `[N, H, W, C]`.
        normalize: `"unit"`, `"standardize"` or `"none"` (see `load`).
        mean, std: per-channel statistics for `"standardize"`; default: the
            train split of `name` (read once per process).
        name, data_dir: the dataset, for the default statistics.

    Returns:
        float32 array of the same shape.

    Example:

    >>> float(normalize_images(np.full((1, 2, 2, 3), 255, np.uint8)).max())
    1.0
    """
    x = np.asarray(x, dtype=np.float32)
    if normalize == "unit":
        return x / np.float32(255.0)
    if normalize == "none":
        return x
    if mean is None or std is None:
        if name is None:
            raise ValueError("normalize_images: 'standardize' needs mean and std, or the dataset name.")
        key = (name, resolve_data_dir(data_dir))
        if key not in _TRAIN_STATS:
            train, _ = load_arrays(name, "train", data_dir)
            flat = train.reshape(-1, train.shape[-1]).astype(np.float64)
            _TRAIN_STATS[key] = (flat.mean(0), flat.std(0))
        mean = _TRAIN_STATS[key][0] if mean is None else mean
        std = _TRAIN_STATS[key][1] if std is None else std
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    if not (np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError(f"normalize_images: std must be positive and finite, got {std}.")
    return (x - mean) / std

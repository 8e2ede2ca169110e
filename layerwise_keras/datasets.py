"""Datasets: input validation, `tf.data` pipelines and sample grids.

The generative models themselves live in `layerwise_keras.generative` (pure
NumPy); they are re-exported here:

- `HierarchicalModel`: a random hierarchical model (any depth).
- `hierarchical_digits`: the paper's Figure 1 seven-segment digits.
"""

from __future__ import annotations

import numbers
import os
import sys

import keras
import numpy as np

from layerwise_keras.generative import (  # noqa: F401  (re-exports)
    DIGITS_LEVEL_NAMES,
    HierarchicalModel,
    hierarchical_digits,
)


def _tf():
    """Imports TensorFlow for the `tf.data` builders (the array loaders and checks work without it)."""
    try:
        import tensorflow as tf
    except ImportError as err:
        raise ImportError(
            "This function builds a tf.data pipeline and needs TensorFlow (pip install tensorflow); "
            "with another Keras backend pass NumPy arrays to model.fit (see load_arrays)."
        ) from err
    return tf


def _to_numpy_if_tensor(value):
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(value, tf.Tensor):
        return value.numpy()
    return value


__all__ = [
    "DIGITS_LEVEL_NAMES",
    "ArrayBatches",
    "HierarchicalModel",
    "augment_batch",
    "check_images",
    "check_labels",
    "from_arrays",
    "hierarchical_dataset",
    "hierarchical_digits",
    "hierarchical_digits_dataset",
    "load",
    "load_arrays",
    "normalize_images",
    "sample_grid",
    "save_sample_grid",
]


def _positive_int(value, name, owner):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: `{name}` must be an integer >= 1, got {value!r}.")
    return int(value)


def check_images(images, name="images"):
    """Validates a batch of images and returns it as a float32 NumPy array.

    Args:
        images: array-like of shape `[n, height, width, channels]` with a real
            numeric dtype (integers are cast to float32), `n >= 1`, and only
            finite values.
        name: str, how to call the argument in error messages.

    Returns:
        A float32 `np.ndarray` of shape `[n, height, width, channels]` (the
        input itself when it already is one).

    Raises:
        ValueError: if the rank is not 4 (a rank-3 input gets a hint to add a
            channel axis with `images[..., None]`), the dtype is not real
            numeric, the batch is empty, or any value is NaN or infinite (the
            message says how many).

    Example:

    >>> x = check_images(np.zeros((2, 9, 9, 1)))
    >>> x.dtype, x.shape
    (dtype('float32'), (2, 9, 9, 1))
    """
    images = np.asarray(_to_numpy_if_tensor(images))
    if images.dtype == bool or not (
        np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)
    ):
        raise ValueError(f"`{name}` must have a real numeric dtype (float or int), got dtype {images.dtype}.")
    if images.ndim == 3:
        raise ValueError(
            f"`{name}` must have rank 4 [n, height, width, channels], got rank 3 with shape {images.shape}; "
            f"for single-channel images add a channel axis: {name}[..., None]."
        )
    if images.ndim != 4:
        raise ValueError(
            f"`{name}` must have rank 4 [n, height, width, channels], got rank {images.ndim} "
            f"with shape {images.shape}."
        )
    if images.shape[0] < 1 or min(images.shape[1:]) < 1:
        raise ValueError(f"`{name}` must be non-empty, got shape {images.shape}.")
    images = images.astype(np.float32, copy=False)
    finite = np.isfinite(images)
    if not finite.all():
        bad = images.size - int(np.count_nonzero(finite))
        nan = int(np.count_nonzero(np.isnan(images)))
        raise ValueError(
            f"`{name}` contains {bad} non-finite value(s) ({nan} NaN, {bad - nan} infinite) "
            f"out of {images.size}; clean or drop those images first."
        )
    return images


def check_labels(labels, n, name="labels", num_classes=None):
    """Validates integer class labels and returns them as an int64 NumPy array.

    Args:
        labels: array-like of shape `[n]`, non-negative integers (floats are
            accepted only when they hold whole numbers).
        n: int, the expected number of labels (the number of images).
        name: str, how to call the argument in error messages.
        num_classes: int or None; if given, every label must be below it.

    Returns:
        An int64 `np.ndarray` of shape `[n]`.

    Raises:
        ValueError: on a wrong rank or length, a non-integer value, a
            negative label, or a label >= `num_classes`.

    Example:

    >>> check_labels([0, 2, 1], 3)
    array([0, 2, 1])
    """
    labels = np.asarray(_to_numpy_if_tensor(labels))
    if labels.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D [n] integer class ids, got shape {labels.shape}.")
    if len(labels) != n:
        raise ValueError(f"`{name}` has {len(labels)} entries but there are {n} images; they must match.")
    if labels.dtype == bool or not (
        np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
    ):
        raise ValueError(f"`{name}` must hold integers, got dtype {labels.dtype}.")
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise ValueError(f"`{name}` must hold whole numbers (class ids), got non-integer values.")
    labels = labels.astype(np.int64)
    if n and labels.min() < 0:
        raise ValueError(f"`{name}` must be >= 0, got min {labels.min()}.")
    if n and num_classes is not None and labels.max() >= num_classes:
        raise ValueError(
            f"`{name}` must be class ids in 0..{num_classes - 1} ({num_classes} classes), got max {labels.max()}."
        )
    return labels


def from_arrays(images, labels=None, batch_size=128, shuffle=False, seed=0, drop_remainder=False):
    """Builds a batched, prefetched `tf.data.Dataset` from NumPy arrays.

    Args:
        images: float array `[n, height, width, channels]`, finite (checked
            with `check_images`).
        labels: optional int array `[n]` of class ids >= 0. When None the
            dataset yields image batches only.
        batch_size: int >= 1.
        shuffle: bool; when True the whole dataset is shuffled with `seed`,
            differently (but deterministically) on every iteration.
        seed: int, the shuffle seed.
        drop_remainder: bool, drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset` of `(images, labels)` batches (float32, int64), or
        of image batches when `labels` is None.

    Example:

    >>> ds = from_arrays(np.zeros((10, 9, 9, 1)), np.arange(10) % 2, batch_size=4)
    >>> [tuple(x.shape) for x, y in ds]
    [(4, 9, 9, 1), (4, 9, 9, 1), (2, 9, 9, 1)]
    """
    owner = "from_arrays"
    images = check_images(images)
    n = len(images)
    batch_size = _positive_int(batch_size, "batch_size", owner)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{owner}: `seed` must be an integer, got {seed!r}.")
    tf = _tf()
    if labels is None:
        ds = tf.data.Dataset.from_tensor_slices(images)
    else:
        labels = check_labels(labels, n)
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(buffer_size=n, seed=int(seed), reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=bool(drop_remainder))
    return ds.prefetch(tf.data.AUTOTUNE)


def hierarchical_dataset(model, n, seed=0, batch_size=128, shuffle=True):
    """Samples a `HierarchicalModel` and wraps the samples in a `tf.data.Dataset`.

    Args:
        model: a `HierarchicalModel`.
        n: int >= 1, the number of images.
        seed: int >= 0, the sampling seed (also the shuffle seed).
        batch_size: int >= 1.
        shuffle: bool, shuffle every epoch (deterministically).

    Returns:
        A tuple `(dataset, latents)`: the `(images, labels)` dataset and the
        list of latent class grids, in sampling order (see
        `HierarchicalModel.sample`).

    Example:

    >>> ds, latents = hierarchical_dataset(HierarchicalModel(), 256, batch_size=64)
    >>> [z.shape for z in latents]
    [(256, 3, 3), (256, 1, 1)]
    """
    if not isinstance(model, HierarchicalModel):
        raise ValueError(f"hierarchical_dataset: `model` must be a HierarchicalModel, got {type(model).__name__}.")
    images, labels, latents = model.sample(n, seed=seed)
    return from_arrays(images, labels, batch_size=batch_size, shuffle=shuffle, seed=seed), latents


def hierarchical_digits_dataset(n, seed=0, batch_size=128, shuffle=True, **kwargs):
    """Samples `hierarchical_digits` and wraps the samples in a `tf.data.Dataset`.

    Args:
        n: int >= 1, the number of images.
        seed: int >= 0, the sampling seed (also the shuffle seed).
        batch_size: int >= 1.
        shuffle: bool, shuffle every epoch (deterministically).
        **kwargs: passed to `hierarchical_digits` (`noise`,
            `distractor_rate`, `variants`, `texture`).

    Returns:
        A tuple `(dataset, latents)`: the `(images, labels)` dataset of
        27 x 27 x 1 images and digit labels, and the list of latent class
        grids `[n, 9, 9]`, `[n, 3, 3]`, `[n, 1, 1]` in sampling order.

    Example:

    >>> ds, latents = hierarchical_digits_dataset(1000, batch_size=100, noise=0.1)
    >>> x, y = next(iter(ds))
    >>> tuple(x.shape), tuple(y.shape)
    ((100, 27, 27, 1), (100,))
    """
    images, labels, latents = hierarchical_digits(n, seed=seed, **kwargs)
    return from_arrays(images, labels, batch_size=batch_size, shuffle=shuffle, seed=seed), latents


def sample_grid(images, labels, per_label=10, pad=1):
    """Tiles example images into one uint8 grid, one row per label.

    Rows follow the sorted distinct label values; row r shows the first
    `per_label` images of its label in input order (missing cells stay at the
    padding grey). Pixel values are min-max scaled to 0..255 over all shown
    images together; padding is mid grey (128).

    Args:
        images: float array `[n, height, width, channels]`.
        labels: int array `[n]`.
        per_label: int >= 1, images per row.
        pad: int >= 0, pixels of padding around and between images.

    Returns:
        A uint8 `np.ndarray` of shape
        `[rows * (height + pad) + pad, per_label * (width + pad) + pad, channels]`.

    Example:

    >>> images, labels, _ = hierarchical_digits(200)
    >>> sample_grid(images, labels, per_label=5).shape
    (281, 141, 1)
    """
    owner = "sample_grid"
    images = check_images(images)
    labels = check_labels(labels, len(images))
    per_label = _positive_int(per_label, "per_label", owner)
    if isinstance(pad, (bool, np.bool_)) or not isinstance(pad, numbers.Integral) or pad < 0:
        raise ValueError(f"{owner}: `pad` must be an integer >= 0, got {pad!r}.")
    pad = int(pad)
    values = np.unique(labels)
    picks = [np.flatnonzero(labels == v)[:per_label] for v in values]
    shown = images[np.concatenate(picks)]
    lo, hi = float(shown.min()), float(shown.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    _, h, w, c = images.shape
    grid = np.full((len(values) * (h + pad) + pad, per_label * (w + pad) + pad, c), 128, dtype=np.uint8)
    for r, idx in enumerate(picks):
        for k, i in enumerate(idx):
            y, x = pad + r * (h + pad), pad + k * (w + pad)
            cell = np.clip(np.rint((images[i] - lo) * scale), 0, 255)
            grid[y : y + h, x : x + w] = cell.astype(np.uint8)
    return grid


def save_sample_grid(images, labels, path, per_label=10, scale=2, overwrite=False):
    """Writes a `sample_grid` of the images to a PNG file.

    Args:
        images: float array `[n, height, width, channels]` with 1, 3 or 4
            channels.
        labels: int array `[n]`.
        path: str or path-like, the PNG file to write (parent directories are
            created).
        per_label: int >= 1, images per row (one row per label).
        scale: int >= 1, nearest-neighbour upscaling factor.
        overwrite: replace an existing file at `path` instead of raising
            `FileExistsError`.

    Returns:
        `path`, as given.

    Example:

    >>> images, labels, _ = hierarchical_digits(500)
    >>> save_sample_grid(images, labels, "docs/images/hierarchical_digits.png", scale=3)
    'docs/images/hierarchical_digits.png'
    """
    owner = "save_sample_grid"
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{owner}: {path} already exists; pass overwrite=True to replace it.")
    scale = _positive_int(scale, "scale", owner)
    grid = sample_grid(images, labels, per_label=per_label)
    if grid.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{owner}: PNG needs 1, 3 or 4 channels, got {grid.shape[-1]}.")
    if scale > 1:
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    tf = _tf()
    data = tf.io.encode_png(tf.constant(grid)).numpy()
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ----------------------------------------------------------------------------
# Real image datasets: tensorflow_datasets when it can, local files otherwise
# ----------------------------------------------------------------------------

DATA_ENV = "LAYERWISE_KERAS_DATA"
NORMALIZATIONS = ("unit", "standardize", "none")


def _data_dir(data_dir):
    return data_dir if data_dir is not None else os.environ.get(DATA_ENV) or None


def load_arrays(name, split="train", data_dir=None):
    """Loads one split of a real image dataset as NumPy arrays.

    With `data_dir` (or the `LAYERWISE_KERAS_DATA` environment variable) the
    files are read locally (`layerwise_keras.local_data` lists the layouts);
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

    >>> x, y = load_arrays("cifar10", "test", data_dir="../shared/data")
    >>> x.shape, y.shape
    ((10000, 32, 32, 3), (10000,))
    """
    from layerwise_keras.local_data import DataError, read_local

    folder = _data_dir(data_dir)
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


def load(name, split="train", data_dir=None, batch_size=128, normalize="unit", augment=False,
         shuffle=None, seed=0, mean=None, std=None):
    """Loads a real image dataset as a batched `tf.data.Dataset` of `(images, labels)`.

    Args:
        name: `"cifar10"`, `"mnist"` or `"fashion_mnist"`.
        split: see `load_arrays`.
        data_dir: folder with local files (or set `LAYERWISE_KERAS_DATA`);
            None tries `tensorflow_datasets`.
        batch_size: int, or None for unbatched elements.
        normalize: `"unit"` (pixels / 255, the default), `"standardize"`
            (subtract `mean`, divide by `std`, per channel, in 0..255 units;
            both default to the statistics of the dataset's train split) or
            `"none"` (float32 0..255).
        augment: random crop with 4-pixel zero padding + random horizontal
            flip, applied per epoch (seeded). Off by default.
        shuffle: shuffle every epoch (seeded); default True for `"train"`.
        seed: int, seeds shuffling and augmentation.
        mean, std: per-channel statistics for `"standardize"`.

    Returns:
        A `tf.data.Dataset` of float32 images `[.., H, W, C]` and int64 labels.

    Example:

    >>> ds = load("cifar10", "test", data_dir="../shared/data", batch_size=256)
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"load: normalize must be one of {NORMALIZATIONS}, got {normalize!r}.")
    x, y = load_arrays(name, split, data_dir)
    x = normalize_images(x, normalize, mean, std, name=name, data_dir=data_dir)
    tf = _tf()
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if split == "train" if shuffle is None else shuffle:
        ds = ds.shuffle(len(x), seed=int(seed), reshuffle_each_iteration=True)
    if augment:
        ds = ds.map(_augmenter(x.shape[1:], seed), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if batch_size is not None:
        ds = ds.batch(_positive_int(batch_size, "batch_size", "load"))
    return ds.prefetch(tf.data.AUTOTUNE)


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

    >>> normalize_images(np.full((1, 2, 2, 3), 255, np.uint8)).max()
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
        key = (name, _data_dir(data_dir))
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


def _augmenter(image_shape, seed, pad=4):
    height, width, _ = image_shape
    tf = _tf()

    def augment(image, label):
        image = tf.image.pad_to_bounding_box(image, pad, pad, height + 2 * pad, width + 2 * pad)
        image = tf.image.random_crop(image, (height, width, image_shape[-1]), seed=seed)
        image = tf.image.random_flip_left_right(image, seed=seed + 1)
        return image, label

    return augment


def augment_batch(images, rng, pad=4):
    """Random crop with zero padding and random horizontal flip of a NumPy batch.

    The same augmentation as `load(..., augment=True)` (pad `pad` pixels,
    crop back to the image size at a random offset, flip left-right with
    probability 1/2), in NumPy so it runs with any Keras backend.

    Args:
        images: float array `[n, H, W, C]`.
        rng: a `numpy.random.Generator`.
        pad: int, the zero padding on each side before the crop.

    Returns:
        A new float32 array of the same shape.

    Example:

    >>> out = augment_batch(np.ones((2, 8, 8, 3)), np.random.default_rng(0))
    >>> out.shape
    (2, 8, 8, 3)
    """
    images = np.asarray(images, dtype=np.float32)
    n, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    rows = dy[:, None] + np.arange(height)[None, :]
    cols = dx[:, None] + np.arange(width)[None, :]
    flip = rng.random(n) < 0.5
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


class ArrayBatches(keras.utils.PyDataset):
    """Shuffled, optionally augmented batches of NumPy arrays, for `model.fit` on any backend.

    The TensorFlow backend can use `from_arrays` (`tf.data`); JAX and
    PyTorch runs, runs with `augment=True` and checkpointed (resumable) runs
    use this: a `keras.utils.PyDataset` whose batches are a function of
    `(seed, epoch, batch index)` only. Epoch `e`'s order is
    `default_rng([seed, e]).permutation(n)` and batch `i`'s augmentation draws
    from `default_rng([seed, e, i])`, so a run resumed at epoch `e`
    (`epoch=e`) sees exactly the batches an uninterrupted run sees.

    Args:
        images: float array `[n, H, W, C]` (checked like `check_images`).
        labels: int array `[n]`.
        batch_size: int.
        shuffle: a new order every epoch (else the array order).
        augment: apply `augment_batch` to every batch.
        seed: int seeding the orders and the augmentation.
        epoch: int, the 0-based epoch the first batches belong to (the
            `initial_epoch` of a resumed `fit`); `on_epoch_end` advances it.

    Returns:
        A `keras.utils.PyDataset` of `(images, labels)` batches.

    Example:

    >>> data = ArrayBatches(np.zeros((10, 8, 8, 3)), np.zeros(10, int), batch_size=4, augment=True)
    >>> len(data)
    3
    """

    def __init__(self, images, labels, batch_size=128, shuffle=True, augment=False, seed=0, epoch=0):
        super().__init__()
        self.images = check_images(images)
        self.labels = check_labels(labels, len(self.images))
        self.batch_size = _positive_int(batch_size, "batch_size", "ArrayBatches")
        self.shuffle, self.augment = bool(shuffle), bool(augment)
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"ArrayBatches: `seed` must be an integer >= 0, got {seed!r}.")
        if isinstance(epoch, (bool, np.bool_)) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"ArrayBatches: `epoch` must be an integer >= 0, got {epoch!r}.")
        self.seed = int(seed)
        self.epoch = int(epoch)
        self._set_order()

    def _set_order(self):
        n = len(self.images)
        self._order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        keep = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.images[keep]
        if self.augment:
            images = augment_batch(images, np.random.default_rng([self.seed, self.epoch, int(index)]))
        return images, self.labels[keep]

    def on_epoch_end(self):
        self.epoch += 1
        self._set_order()

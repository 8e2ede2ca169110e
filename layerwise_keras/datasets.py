"""Datasets: input validation, `tf.data` pipelines and sample grids.

The generative models themselves live in `layerwise_keras.generative` (pure
NumPy); they are re-exported here:

- `HierarchicalModel`: a random hierarchical model (any depth).
- `hierarchical_digits`: the paper's Figure 1 seven-segment digits.
"""

from __future__ import annotations

import numbers
import os

import numpy as np
import tensorflow as tf

from layerwise_keras.generative import (  # noqa: F401  (re-exports)
    DIGITS_LEVEL_NAMES,
    HierarchicalModel,
    hierarchical_digits,
)

__all__ = [
    "DIGITS_LEVEL_NAMES",
    "HierarchicalModel",
    "check_images",
    "check_labels",
    "from_arrays",
    "hierarchical_dataset",
    "hierarchical_digits",
    "hierarchical_digits_dataset",
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
    if isinstance(images, tf.Tensor):
        images = images.numpy()
    images = np.asarray(images)
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


def check_labels(labels, n, name="labels"):
    """Validates integer class labels and returns them as an int64 NumPy array.

    Args:
        labels: array-like of shape `[n]`, non-negative integers (floats are
            accepted only when they hold whole numbers).
        n: int, the expected number of labels (the number of images).
        name: str, how to call the argument in error messages.

    Returns:
        An int64 `np.ndarray` of shape `[n]`.

    Raises:
        ValueError: on a wrong rank or length, a non-integer value, or a
            negative label.

    Example:

    >>> check_labels([0, 2, 1], 3)
    array([0, 2, 1])
    """
    if isinstance(labels, tf.Tensor):
        labels = labels.numpy()
    labels = np.asarray(labels)
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
    data = tf.io.encode_png(tf.constant(grid)).numpy()
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path

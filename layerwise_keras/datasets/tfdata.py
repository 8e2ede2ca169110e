"""`tf.data` pipelines (TensorFlow-only: TensorFlow is imported when they are called).
"""

import numbers

import numpy as np

from layerwise_keras.datasets.augment import augment_batch
from layerwise_keras.datasets.checks import positive_int, check_images, check_labels
from layerwise_keras.datasets.digits import hierarchical_digits
from layerwise_keras.datasets.generative import HierarchicalModel
from layerwise_keras.datasets.real import NORMALIZATIONS, load_arrays, normalize_images


def import_tensorflow():
    """Imports TensorFlow for the `tf.data` builders (the array loaders and checks work without it)."""
    try:
        import tensorflow as tf
    except ImportError as err:
        raise ImportError(
            "This function builds a tf.data pipeline and needs TensorFlow (pip install tensorflow); "
            "with another Keras backend pass NumPy arrays to model.fit (see load_arrays)."
        ) from err
    return tf


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
    batch_size = positive_int(batch_size, "batch_size", owner)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{owner}: `seed` must be an integer, got {seed!r}.")
    tf = import_tensorflow()
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

    A stand-in for Keras' `mnist.npz` (its test split only: 10,000 blank
    images):

    >>> import os
    >>> np.savez(os.path.join(tmp_dir, "mnist.npz"), x_test=np.zeros((10000, 28, 28), np.uint8),
    ...          y_test=np.arange(10000) % 10)
    >>> ds = load("mnist", "test", data_dir=tmp_dir, batch_size=256)
    >>> x, y = next(iter(ds))
    >>> tuple(x.shape), x.dtype.name, tuple(y.shape)
    ((256, 28, 28, 1), 'float32', (256,))
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"load: normalize must be one of {NORMALIZATIONS}, got {normalize!r}.")
    x, y = load_arrays(name, split, data_dir)
    x = normalize_images(x, normalize, mean, std, name=name, data_dir=data_dir)
    tf = import_tensorflow()
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if split == "train" if shuffle is None else shuffle:
        ds = ds.shuffle(len(x), seed=int(seed), reshuffle_each_iteration=True)
    if augment:
        ds = ds.enumerate().map(_augmenter(x.shape[1:], seed))  # sequential: the epoch count is kept in order
    if batch_size is not None:
        ds = ds.batch(positive_int(batch_size, "batch_size", "load"))
    return ds.prefetch(tf.data.AUTOTUNE)


def _augmenter(image_shape, seed):
    """A `Dataset.map` function applying `augment_batch` (the one augmentation) to each image.

    Each iteration over the dataset draws from its own stream: iteration `e`
    augments image `i` with `default_rng([seed, e, i])`, so an epoch's
    augmentation depends only on the seed, the epoch and the image's place
    in the (shuffled) order, as in `ArrayBatches`.
    """
    tf = import_tensorflow()
    epochs = {"count": -1}

    def numpy_augment(image, index):
        if int(index) == 0:
            epochs["count"] += 1
        rng = np.random.default_rng([int(seed), epochs["count"], int(index)])
        return augment_batch(image[None], rng)[0]

    def augment(index, element):
        image, label = element
        image = tf.numpy_function(numpy_augment, [image, index], tf.float32, stateful=True)
        return tf.ensure_shape(image, image_shape), label

    return augment

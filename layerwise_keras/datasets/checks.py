"""Input checks at the library's boundary: images, labels and whole splits.

Every entry point that takes user data (`LayerwiseTrainer`, `KMeans` through
its own point check, `from_arrays`, `ArrayBatches`, `runs.grow`) validates it
here once and hands clean float32 / int64 arrays inward.
"""

import numbers
import sys

import numpy as np


def _to_numpy_if_tensor(value):
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(value, tf.Tensor):
        return value.numpy()
    return value


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


def check_splits(splits):
    """Validates a splits dict (`load_splits`' layout) before any training.

    Args:
        splits: dict with `x_train, y_train, x_val, y_val, x_test, y_test`
            and `num_classes`.

    Returns:
        None.

    Raises:
        ValueError: naming the array: a missing key, images that are not
            finite real `[n, H, W, C]` arrays, image shapes that differ
            between splits, or labels that are not class ids in
            `0..num_classes - 1` (one per image).

    Example:

    >>> check_splits(load_splits({"name": "hierarchical_digits", "train": 100, "val": 10, "test": 10}))
    """
    missing = [k for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "num_classes")
               if k not in splits]
    if missing:
        raise ValueError(f"splits: missing {missing}.")
    num_classes = splits["num_classes"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"splits: num_classes must be an integer >= 2, got {num_classes!r}.")
    shapes = {}
    for part in ("train", "val", "test"):
        x = check_images(splits[f"x_{part}"], name=f"x_{part}")
        check_labels(splits[f"y_{part}"], len(x), name=f"y_{part}", num_classes=int(num_classes))
        shapes[part] = x.shape[1:]
    if len(set(shapes.values())) != 1:
        raise ValueError(f"splits: the image shapes differ between splits: {shapes}.")

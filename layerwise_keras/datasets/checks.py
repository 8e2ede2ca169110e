"""Input checks at the library's boundary: images, labels, whole splits and scalar arguments.

Every entry point that takes user data (`LayerwiseTrainer`, `KMeans` through
its own point check, `from_arrays`, `ArrayBatches`, `runs.grow`) validates it
here once and hands clean float32 / int64 arrays inward. `positive_int`,
`check_int` and `check_float` check scalar arguments (the generative models'
among them) and name their owner in the error.
"""

import math
import numbers
import sys

import numpy as np


def _to_numpy_if_tensor(value):
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(value, tf.Tensor):
        return value.numpy()
    return value


def positive_int(value, name, owner):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: `{name}` must be an integer >= 1, got {value!r}.")
    return int(value)


def check_int(value, name, minimum=None, *, owner):
    """Returns `value` as an int, or raises `ValueError` naming `owner` and `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner}: `{name}` must be an integer, got {value!r}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: `{name}` must be >= {minimum}, got {value}.")
    return value


def check_float(value, name, minimum=0.0, maximum=None, *, owner):
    """Returns `value` as a finite float in [minimum, maximum], or raises `ValueError`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: `{name}` must be a real number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: `{name}` must be finite, got {value}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: `{name}` must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{owner}: `{name}` must be <= {maximum}, got {value}.")
    return value


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

    >>> from layerwise_keras.datasets import load_splits
    >>> splits = load_splits({"name": "hierarchical_digits", "train": 100, "val": 10, "test": 10})
    >>> check_splits(splits)
    >>> check_splits(dict(splits, y_val=splits["y_val"] + 10))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...
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


class InputRangeWarning(UserWarning):
    """Images whose values look like raw 0..255 pixels (the network trains on them badly)."""


# Float images whose values reach past this (and are never negative) look like raw 0..255 pixels.
RAW_PIXEL_MAX = 10.0


def _is_dataset(data):
    return hasattr(data, "element_spec")


def _check_image_shape(shape, input_shape, name):
    shape = tuple(shape)
    if len(shape) != 4:
        hint = " (a tf.data.Dataset must be batched: .batch(...))" if len(shape) == 3 else ""
        raise ValueError(f"`{name}` must be batches of images [n, height, width, channels], got shape "
                         f"{shape}{hint}.")
    if input_shape is not None and any(d is not None and e is not None and d != e
                                       for d, e in zip(shape[1:], input_shape)):
        raise ValueError(
            f"`{name}` holds images of shape {tuple(shape[1:])}, but the model's input is {tuple(input_shape)} "
            "(height, width, channels): give the model the images' shape (input_model(x.shape[1:])) or resize "
            "the images."
        )


def _check_label_values(labels, n, num_classes, fmt, name):
    labels = np.asarray(_to_numpy_if_tensor(labels))
    if labels.dtype.kind in "USO":
        sample = labels.reshape(-1)[:3].tolist()
        raise ValueError(
            f"`{name}` holds {labels.dtype.kind == 'O' and 'objects' or 'strings'} (e.g. {sample}), not class ids. "
            f"Map them to integers 0..{num_classes - 1} first, e.g. `classes, y = np.unique(labels, "
            "return_inverse=True)` or keras.layers.StringLookup."
        )
    one_hot_shape = labels.ndim == 2 and labels.shape[1] == num_classes and num_classes > 1
    if fmt == "one_hot":
        if not one_hot_shape:
            raise ValueError(
                f"`{name}` has shape {labels.shape}, but the loss (categorical cross-entropy) wants one-hot labels "
                f"[n, {num_classes}]: compile with loss='sparse_categorical_crossentropy' for class ids, or pass "
                f"keras.utils.to_categorical(labels, {num_classes})."
            )
        if len(labels) != n:
            raise ValueError(f"`{name}` has {len(labels)} rows but there are {n} images; they must match.")
        values = labels.astype("float64")
        if (values.min(initial=0) < 0 or values.max(initial=0) > 1
                or not np.allclose(values.sum(-1), 1.0, atol=1e-3)):
            raise ValueError(f"`{name}` must be one-hot (or probability) rows in [0, 1] that sum to 1.")
        return
    if one_hot_shape and fmt == "sparse":
        raise ValueError(
            f"`{name}` looks one-hot ({labels.shape}), but the loss (sparse categorical cross-entropy) wants class "
            "ids [n]: compile with loss='categorical_crossentropy', or pass labels.argmax(-1)."
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 1 or fmt == "sparse":
        check_labels(labels, n, name=name, num_classes=num_classes)


def _warn_raw_pixels(images, name):
    import warnings

    if np.issubdtype(images.dtype, np.integer):
        high = int(images.max()) if images.size else 0
    else:
        if not np.isfinite(images).all():
            check_images(images, name=name)  # the error that counts the NaN / Inf values
        if images.min(initial=0.0) < 0:
            return
        high = float(images.max()) if images.size else 0.0
        if high <= RAW_PIXEL_MAX:
            return
    if high > RAW_PIXEL_MAX or images.dtype == np.uint8:
        warnings.warn(
            f"`{name}` holds {images.dtype} values up to {high:g}: raw 0..255 pixels train badly (huge first "
            "losses, k-means on huge distances). Scale them first, e.g. x.astype('float32') / 255, or standardise "
            "(the datasets of layerwise_keras.datasets come scaled).", InputRangeWarning, stacklevel=4)


def check_fit_data(data, labels, input_shape, num_classes, label_format=None, name="x", images_only=False):
    """Checks what a growth's `fit` gets, before any epoch: images against the model, labels, emptiness.

    Arrays (NumPy, tensors) are checked in full: rank 4 images of the
    model's input shape, at least one image, finite values, labels as class
    ids in `[0, num_classes)` (or one-hot rows of `num_classes` where the loss
    wants them), one per image; images of integer dtype or with values past
    `RAW_PIXEL_MAX` get an `InputRangeWarning`. A `tf.data.Dataset` is checked
    from its `element_spec` and cardinality only, without reading it: image
    rank and shape, label dtype and shape, a known empty dataset. Its values
    (label range, NaN, pixel range) are not checked; nor are Python
    generators and `keras.utils.PyDataset` inputs, which `fit` reads as usual.

    Args:
        data: `x` (arrays or a dataset of images or `(images, labels)`).
        labels: `y` for array `x`, else None.
        input_shape: the model's image shape `(H, W, C)`.
        num_classes: int.
        label_format: "sparse", "one_hot" or None (see `growth.fit_checks.label_format`).
        name: how to call `data` in messages (`x`, `validation_data`, `kmeans_data`).
        images_only: `data` holds images only (`kmeans_data`).

    Returns:
        None.

    Raises:
        ValueError: naming the argument, what is wrong and the fix.

    Example:

    >>> check_fit_data(np.zeros((4, 9, 9, 1)), np.array([0, 1, 2, 0]), (9, 9, 1), 3, "sparse")
    """
    if data is None:
        return
    if _is_dataset(data):
        spec = data.element_spec
        parts = spec if isinstance(spec, tuple) else (spec,)
        image_spec = parts[0]
        if not hasattr(image_spec, "shape"):
            return  # a dict of inputs: not checked
        _check_image_shape(image_spec.shape, input_shape, name)
        if getattr(image_spec.dtype, "name", "") == "string":
            raise ValueError(f"`{name}` yields string images; decode them to float images first.")
        if len(parts) >= 2 and not images_only and hasattr(parts[1], "shape"):
            label_spec = parts[1]
            if getattr(label_spec.dtype, "name", "") == "string":
                raise ValueError(
                    f"`{name}` yields string labels; map them to class ids 0..{num_classes - 1} first "
                    "(e.g. keras.layers.StringLookup in a .map)."
                )
            rank = label_spec.shape.rank
            last = label_spec.shape[-1] if rank else None
            if label_format == "one_hot" and (rank != 2 or (last is not None and last != num_classes)):
                raise ValueError(f"`{name}` yields labels of shape {label_spec.shape}, but the loss wants one-hot "
                                 f"labels [batch, {num_classes}].")
            if label_format == "sparse" and rank == 2 and last == num_classes and num_classes > 1:
                raise ValueError(f"`{name}` yields one-hot labels {label_spec.shape}, but the loss wants class ids "
                                 "[batch]: compile with loss='categorical_crossentropy'.")
        cardinality = getattr(data, "cardinality", None)
        if callable(cardinality) and int(cardinality()) == 0:
            raise ValueError(f"`{name}` is an empty dataset: fit would end at once without growing anything.")
        return
    if isinstance(data, dict) or not hasattr(data, "shape") and not isinstance(data, (list, tuple)):
        return  # generators, PyDataset, dict inputs: not checked
    images = np.asarray(_to_numpy_if_tensor(data))
    if images.dtype.kind in "USO" or images.dtype == bool:
        raise ValueError(f"`{name}` must be numeric images, got dtype {images.dtype}.")
    _check_image_shape(images.shape, input_shape, name)
    if len(images) == 0:
        raise ValueError(f"`{name}` is empty (shape {images.shape}): fit would end at once without growing anything.")
    _warn_raw_pixels(images, name)
    if labels is not None and not images_only:
        _check_label_values(labels, len(images), num_classes, label_format, f"labels of {name}" if name != "x"
                            else "y")

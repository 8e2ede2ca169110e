"""Sample grids: one row of images per label, as an array or a PNG file.
"""

import numbers
import os

import numpy as np

from layerwise_keras.datasets.checks import positive_int, check_images, check_labels
from layerwise_keras.datasets.tfdata import import_tensorflow


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

    >>> from layerwise_keras.datasets import hierarchical_digits
    >>> images, labels, _ = hierarchical_digits(200, seed=0)
    >>> sample_grid(images, labels, per_label=5).shape
    (281, 141, 1)
    """
    owner = "sample_grid"
    images = check_images(images)
    labels = check_labels(labels, len(images))
    per_label = positive_int(per_label, "per_label", owner)
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

    >>> import os
    >>> from layerwise_keras.datasets import hierarchical_digits
    >>> images, labels, _ = hierarchical_digits(200, seed=0)
    >>> path = save_sample_grid(images, labels, os.path.join(tmp_dir, "digits.png"), scale=3)
    >>> os.path.basename(path), os.path.getsize(path) > 0
    ('digits.png', True)
    """
    owner = "save_sample_grid"
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{owner}: {path} already exists; pass overwrite=True to replace it.")
    scale = positive_int(scale, "scale", owner)
    grid = sample_grid(images, labels, per_label=per_label)
    if grid.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{owner}: PNG needs 1, 3 or 4 channels, got {grid.shape[-1]}.")
    if scale > 1:
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    tf = import_tensorflow()
    data = tf.io.encode_png(tf.constant(grid)).numpy()
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path

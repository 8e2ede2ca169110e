"""Data augmentation: random crop with zero padding and random horizontal flip.

One implementation in NumPy (`augment_batch`), used by `ArrayBatches` on any
backend and, through `tf.numpy_function`, by the `tf.data` pipelines of
`layerwise_keras.datasets.load(augment=True)`.
"""

import numpy as np


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

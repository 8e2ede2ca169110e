"""NumPy batches for `model.fit` on any backend, and image batching helpers.
"""

import numbers

import keras
import numpy as np

from layerwise_keras.datasets.augment import augment_batch
from layerwise_keras.datasets.checks import positive_int, check_images, check_labels


def image_batches(data, batch_size):
    """Yields float32 numpy image batches from an array or a batched tf.data.Dataset."""
    if hasattr(data, "as_numpy_iterator"):
        for element in data.as_numpy_iterator():
            if isinstance(element, (tuple, list)):
                element = element[0]
            yield np.asarray(element, dtype="float32")
    else:
        data = np.asarray(data, dtype="float32")
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size]


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
        self.batch_size = positive_int(batch_size, "batch_size", "ArrayBatches")
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
